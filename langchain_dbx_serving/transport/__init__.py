"""HTTP transport: URLs, auth headers, timeouts, retries, SSE, error mapping; no LLM knowledge."""
