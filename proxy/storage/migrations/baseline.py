"""The tables of migration 0001, frozen: what models.py made when the project moved to Alembic.

The baseline migration creates these, and a database made before Alembic is brought up to them
(legacy.py) before it is stamped at 0001. They never change: models.py moves on through later
migrations. Defaults are the fixed ones models.py gave, which an older database's rows take when a
NOT NULL column is added to them; columns with a computed default (the time) have none here."""
from sqlalchemy import (Boolean, Column, DateTime, Double, ForeignKey, Index, Integer, LargeBinary, MetaData,
                        String, Table, Text)

metadata = MetaData()

Table(
    "metrics", metadata,
    Column("id", Integer, primary_key=True),
    Column("timestamp", DateTime, nullable=False, index=True),
    Column("prompt_tokens", Integer, nullable=False, default=0),
    Column("completion_tokens", Integer, nullable=False, default=0),
    Column("total_tokens", Integer, nullable=False, default=0),
    Column("temperature", Double),
    Column("max_output_tokens", Integer),
)

Table(
    "api_clients", metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(100), nullable=False, index=True),
    Column("key_hash", String(64), nullable=False, unique=True),
    Column("key_prefix", String(12), nullable=False),
    Column("source", String(10), nullable=False, default="cli"),
    Column("created_at", DateTime, nullable=False),
    Column("rotated_at", DateTime),
    Column("revoked_at", DateTime),
    Column("rate_limit", String(100)),
    Column("daily_token_quota", Integer),
    Column("env_key_hash", String(64), index=True),
    Column("env_key_refused", String(10)),
)

Table(
    "request_log", metadata,
    Column("id", Integer, primary_key=True),
    Column("request_id", String(64), nullable=False, unique=True),
    Column("created_at", DateTime, nullable=False),
    Column("route", String(200), nullable=False),
    Column("method", String(10), nullable=False, default="POST"),
    Column("client_id", Integer, ForeignKey("api_clients.id", ondelete="SET NULL")),
    Column("model_requested", String(100)),
    Column("model_used", String(100)),
    Column("status_code", Integer, nullable=False),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("latency_ms", Double, nullable=False),
    Column("upstream_latency_ms", Double),
    Column("ttfb_ms", Double),
    Column("attempt_count", Integer, nullable=False, default=0),
    Column("streamed", Boolean, nullable=False, default=False),
    Column("prompt_tokens", Integer),
    Column("completion_tokens", Integer),
    Column("total_tokens", Integer),
    Column("token_source", String(20)),
    Column("cache_status", String(10)),
    Column("finish_reason", String(40)),
    Column("temperature", Double),
    Column("max_output_tokens", Integer),
    Column("metric_id", Integer, ForeignKey("metrics.id", ondelete="SET NULL")),
    Index("ix_request_log_created_at", "created_at", "status_code", "latency_ms", "prompt_tokens",
          "completion_tokens", "total_tokens", "model_used", "cache_status"),
    Index("ix_request_log_model_created", "model_used", "created_at"),
    Index("ix_request_log_route_created", "route", "created_at"),
    Index("ix_request_log_status_created", "status_code", "created_at"),
    Index("ix_request_log_client_created", "client_id", "created_at"),
)

Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("request_log_id", Integer, ForeignKey("request_log.id", ondelete="CASCADE"), nullable=False,
           index=True),
    Column("number", Integer, nullable=False),
    Column("started_at", DateTime, nullable=False),
    Column("model", String(100), nullable=False),
    Column("key_id", String(24)),
    Column("outcome", String(20), nullable=False),
    Column("status_code", Integer),
    Column("error_code", String(64)),
    Column("error_message", Text),
    Column("latency_ms", Double, nullable=False),
)

Table(
    "exchanges", metadata,
    Column("id", Integer, primary_key=True),
    Column("request_log_id", Integer, ForeignKey("request_log.id", ondelete="CASCADE"), nullable=False,
           unique=True),
    Column("path", Text, nullable=False),
    Column("query", Text),
    Column("action", String(60)),
    Column("stream_format", String(10)),
    Column("key_source", String(10), nullable=False),
    Column("upstream_status", Integer),
    Column("aborted", String(20)),
    Column("request_headers", Text),
    Column("response_headers", Text),
    Column("request_bytes", Integer, nullable=False, default=0),
    Column("response_bytes", Integer, nullable=False, default=0),
    Column("top_p", Double),
    Column("top_k", Integer),
    Column("thoughts_tokens", Integer),
    Column("cached_tokens", Integer),
)

Table(
    "exchange_bodies", metadata,
    Column("id", Integer, primary_key=True),
    Column("exchange_id", Integer, ForeignKey("exchanges.id", ondelete="CASCADE"), nullable=False, unique=True),
    Column("request_body", LargeBinary),
    Column("response_body", LargeBinary),
    Column("request_truncated", Boolean, nullable=False, default=False),
    Column("response_truncated", Boolean, nullable=False, default=False),
)

Table(
    "cache_entries", metadata,
    Column("id", Integer, primary_key=True),
    Column("key", String(64), nullable=False, unique=True),
    Column("model", String(100), nullable=False),
    Column("body", LargeBinary, nullable=False),
    Column("created_at", DateTime, nullable=False),
    Column("expires_at", DateTime, nullable=False),
    Column("last_used_at", DateTime, nullable=False, index=True),
    Column("hits", Integer, nullable=False, default=0),
)

Table(
    "rolled_hours", metadata,
    Column("hour", String(19), primary_key=True),
    Column("built_at", DateTime, nullable=False),
)

Table(
    "hourly_rollups", metadata,
    Column("id", Integer, primary_key=True),
    Column("hour", String(19), nullable=False),
    Column("route", String(200), nullable=False),
    Column("model_used", String(100)),
    Column("status_code", Integer, nullable=False),
    Column("error_code", String(64)),
    Column("client_id", Integer),
    Column("cache_status", String(10)),
    Column("first_model", String(100)),
    *(Column(name, Integer, nullable=False) for name in ("requests", "prompt_tokens", "completion_tokens",
                                                         "total_tokens")),
    Column("latency_sum", Double, nullable=False),
    Column("upstream_sum", Double, nullable=False),
    Column("upstream_count", Integer, nullable=False),
    Column("overhead_sum", Double, nullable=False),
    Column("ttfb_sum", Double, nullable=False),
    Column("ttfb_count", Integer, nullable=False),
    Column("retried", Integer, nullable=False),
    Column("retries", Integer, nullable=False),
    Index("ix_hourly_rollups_hour", "hour"),
)

Table(
    "hourly_attempts", metadata,
    Column("id", Integer, primary_key=True),
    Column("hour", String(19), nullable=False),
    Column("route", String(200), nullable=False),
    Column("model_used", String(100)),
    Column("status_code", Integer, nullable=False),
    Column("client_id", Integer),
    Column("outcome", String(20), nullable=False),
    Column("attempt_status", Integer),
    Column("attempts", Integer, nullable=False),
    Index("ix_hourly_attempts_hour", "hour"),
)

Table(
    "hourly_histograms", metadata,
    Column("id", Integer, primary_key=True),
    Column("scope", String(220), nullable=False),
    Column("metric", String(10), nullable=False),
    Column("hour", String(19), nullable=False),
    Column("bucket", Integer, nullable=False),
    Column("count", Integer, nullable=False),
    Index("ix_hourly_histograms_scope", "scope", "metric", "hour"),
)
