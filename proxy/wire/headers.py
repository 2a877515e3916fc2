"""Gemini's secret-bearing headers, and a copy of headers with their values redacted for storage and logs."""
SECRET = frozenset({"x-goog-api-key", "authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key"})


def redacted(headers):
    return {name: ("[redacted]" if name.lower() in SECRET else value) for name, value in headers.items()}
