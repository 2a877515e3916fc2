"""A local Gemini: the REST API as Google serves it, with injectable latency and faults."""
