"""The native pass-through: Gemini's own REST API, forwarded, streamed back, and logged in full."""
