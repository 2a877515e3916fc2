"""Gemini proxy: a gateway in front of Google's Gemini API."""
__version__ = "0.1.0"
