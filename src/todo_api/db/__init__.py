"""The database: connection URLs, the pool and request transactions, compiled
statements, the circuit breaker and the embedded server for development."""
