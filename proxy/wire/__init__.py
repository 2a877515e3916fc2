"""Gemini's wire format: the routes its REST API has, its query's credentials, and bounded JSON."""
