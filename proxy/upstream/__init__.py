"""The upstream: one resilience engine over two transports to Gemini (the SDK, raw HTTP), with the key pool."""
