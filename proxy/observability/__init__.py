"""Observability: Prometheus metrics, aggregated across Gunicorn workers."""
