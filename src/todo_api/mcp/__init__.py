"""Tasks for AI agents: an MCP server (Streamable HTTP, stateless) inside the API.

`/mcp` sits behind the same middleware as `/api` (request id, body limit, bearer-token
verification, rate limit, logs, metrics); its tools run the same services in the same
row-level-security transaction, as the token's subject.
"""
