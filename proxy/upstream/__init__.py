"""The upstream: Gemini behind the SDK, with retry, fallback and a key pool."""
