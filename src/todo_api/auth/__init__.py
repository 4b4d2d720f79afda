"""Who is calling: bearer tokens verified against a shared secret or a JWKS key set.
Pure by design (no FastAPI, no database)."""
