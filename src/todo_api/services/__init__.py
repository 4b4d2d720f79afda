"""Business rules and queries. Services flush, never commit: the request owns the transaction."""
