"""LLM access: the OpenAI-compatible client, rate limits, and the embedded local server."""
