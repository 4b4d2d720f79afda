// A real Better Auth server for the Python test suite (tests/better_auth_server.py).
//
// It runs Better Auth with email+password sign-up, the JWT plugin left at its
// defaults (EdDSA/Ed25519 keys, iss = aud = baseURL, 15 minute expiry) and the
// bearer plugin, on an in-memory database: nothing to build, nothing to start
// beside it, and every run begins with no users and no signing keys.
//
// Environment:
//   PORT                 port to listen on (127.0.0.1 only); required
//   BETTER_AUTH_URL      base URL; defaults to http://127.0.0.1:$PORT
//   BETTER_AUTH_SECRET   secret for cookies and key encryption; a fixed test
//                        value is used when unset
//
// Prints exactly one line, "READY <base url>", once it accepts connections.

import http from "node:http";
import { betterAuth } from "better-auth";
import { memoryAdapter } from "better-auth/adapters/memory";
import { toNodeHandler } from "better-auth/node";
import { bearer, jwt } from "better-auth/plugins";

const port = Number.parseInt(process.env.PORT ?? "", 10);
if (!Number.isInteger(port) || port <= 0 || port > 65535) {
  console.error("server.mjs: set PORT to a TCP port number");
  process.exit(2);
}
const baseURL = process.env.BETTER_AUTH_URL || `http://127.0.0.1:${port}`;
const secret =
  process.env.BETTER_AUTH_SECRET || "todo-api-test-only-better-auth-secret-0123456789";

// The memory adapter only knows the models it is given a table for; the JWT
// plugin adds "jwks" to the core four.
const db = { user: [], session: [], account: [], verification: [], jwks: [] };

const auth = betterAuth({
  baseURL,
  secret,
  database: memoryAdapter(db),
  emailAndPassword: { enabled: true },
  plugins: [jwt(), bearer()],
  // Tests sign many users up in a burst from one address.
  rateLimit: { enabled: false },
  telemetry: { enabled: false },
});

const handle = toNodeHandler(auth);

const server = http.createServer((req, res) => {
  if (req.url && req.url.startsWith("/api/auth/")) {
    handle(req, res).catch((err) => {
      console.error(err);
      if (!res.headersSent) res.writeHead(500);
      res.end();
    });
    return;
  }
  res.writeHead(404, { "content-type": "text/plain" });
  res.end("not found\n");
});

server.listen(port, "127.0.0.1", () => {
  process.stdout.write(`READY ${baseURL}\n`);
});

for (const signal of ["SIGINT", "SIGTERM"]) {
  process.on(signal, () => {
    server.close(() => process.exit(0));
    server.closeAllConnections();
    setTimeout(() => process.exit(0), 2000).unref();
  });
}
