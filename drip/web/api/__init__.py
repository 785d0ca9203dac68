"""JSON for other sites and tools: sign-up API, REST API v1, providers' hooks."""
