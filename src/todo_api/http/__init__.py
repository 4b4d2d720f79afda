"""The HTTP layers around the routes: pure ASGI middleware (request context and access
log, CORS, limits, authentication, rate limits, time limit) and the route-level HTTP
rules (conditional requests, idempotency keys, responses serialised once)."""
