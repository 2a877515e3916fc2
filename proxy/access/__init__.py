"""Access control: client keys, the admin key, rate limits, token quotas, CORS and headers."""
