"""Database schema: the spec's metrics table and the request log around it."""
from datetime import datetime, timezone
from typing import Optional

from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import JSON, BigInteger, ForeignKey, Index, LargeBinary, String, Text, false, true
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


db = SQLAlchemy(model_class=Base)

# The largest value an Integer column holds on every database we run on (PostgreSQL's is 32-bit); input
# bound for one is checked against it, or the INSERT fails as a 500.
INTEGER_MAX = 2**31 - 1


def utcnow():
    return datetime.now(timezone.utc).replace(tzinfo=None)


class Metric(db.Model):
    """One row per successful generation, with exactly the spec's columns."""

    __tablename__ = "metrics"

    id: Mapped[int] = mapped_column(primary_key=True)
    timestamp: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    prompt_tokens: Mapped[int] = mapped_column(default=0)
    completion_tokens: Mapped[int] = mapped_column(default=0)
    total_tokens: Mapped[int] = mapped_column(default=0)
    temperature: Mapped[Optional[float]]
    max_output_tokens: Mapped[Optional[int]]


class ApiClient(db.Model):
    """A proxy-issued client key: only its hash is stored; the secret is shown once."""

    __tablename__ = "api_clients"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 hex of the key
    key_prefix: Mapped[str] = mapped_column(String(12))  # enough to recognise a key in a list
    source: Mapped[str] = mapped_column(String(10), default="cli")  # cli | env | admin
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rotated_at: Mapped[Optional[datetime]]
    revoked_at: Mapped[Optional[datetime]]
    rate_limit: Mapped[Optional[str]] = mapped_column(String(100))  # Flask-Limiter syntax; None: default
    daily_token_quota: Mapped[Optional[int]]  # None: the default; 0: unlimited
    # A client from API_KEYS: the sha256 of that key (never the key), kept when the secret is rotated, so
    # seeding at start still knows which client a listed key belongs to.
    env_key_hash: Mapped[Optional[str]] = mapped_column(String(64), index=True)
    # revoked | rotated: an operator refused the client's API_KEYS key; every start keeps it refused
    # until an operator restores it (None: API_KEYS alone decides).
    env_key_refused: Mapped[Optional[str]] = mapped_column(String(10))
    # Spend and scope (migration 0005): USD per budget_period (day | month, UTC); None: no budget.
    budget_usd: Mapped[Optional[float]]
    budget_period: Mapped[Optional[str]] = mapped_column(String(5))
    models: Mapped[Optional[list]] = mapped_column(JSON)  # the models it may name; None: every one offered
    expires_at: Mapped[Optional[datetime]]  # naive UTC; from then on the key is refused

    @property
    def active(self):
        return self.revoked_at is None

    @property
    def state(self):
        """active; rotated: it answers only to the secret that replaced its first; revoked."""
        if self.revoked_at is not None:
            return "revoked"
        return "rotated" if self.rotated_at is not None else "active"

    @property
    def from_api_keys(self):
        return self.source == "env"


class RequestLog(db.Model):
    """Every request the proxy answered, failures included (timestamps are naive UTC)."""

    __tablename__ = "request_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_id: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    route: Mapped[str] = mapped_column(String(200))
    method: Mapped[str] = mapped_column(String(10), default="POST")
    client_id: Mapped[Optional[int]] = mapped_column(ForeignKey("api_clients.id", ondelete="SET NULL"))
    model_requested: Mapped[Optional[str]] = mapped_column(String(100))
    model_used: Mapped[Optional[str]] = mapped_column(String(100))
    status_code: Mapped[int]
    error_code: Mapped[Optional[str]] = mapped_column(String(64))
    error_message: Mapped[Optional[str]] = mapped_column(Text)
    latency_ms: Mapped[float]
    upstream_latency_ms: Mapped[Optional[float]]
    ttfb_ms: Mapped[Optional[float]]
    attempt_count: Mapped[int] = mapped_column(default=0)
    streamed: Mapped[bool] = mapped_column(default=False)
    prompt_tokens: Mapped[Optional[int]]
    completion_tokens: Mapped[Optional[int]]
    total_tokens: Mapped[Optional[int]]
    token_source: Mapped[Optional[str]] = mapped_column(String(20))  # usage_metadata | count_tokens | estimate
    cache_status: Mapped[Optional[str]] = mapped_column(String(10))  # HIT | MISS, when the cache was consulted
    finish_reason: Mapped[Optional[str]] = mapped_column(String(40))
    temperature: Mapped[Optional[float]]
    max_output_tokens: Mapped[Optional[int]]
    metric_id: Mapped[Optional[int]] = mapped_column(ForeignKey("metrics.id", ondelete="SET NULL"))
    # The billed token kinds beyond prompt and completion (migration 0003: declared last, as added).
    cached_tokens: Mapped[Optional[int]]  # part of prompt_tokens, billed at the cached price
    thoughts_tokens: Mapped[Optional[int]]  # billed at the output price, beside completion_tokens
    tool_use_prompt_tokens: Mapped[Optional[int]]  # billed at the input price
    service_tier: Mapped[Optional[str]] = mapped_column(String(20))  # standard | flex | priority, when said
    batch: Mapped[bool] = mapped_column(default=False, server_default=false())  # a batch's usage: half price
    # Its cost when written, and the price used (migration 0005); NULL in rows written before costs were
    # stored, which reports cost at read time at today's prices.
    cost_usd: Mapped[Optional[float]]
    price_source: Mapped[Optional[str]] = mapped_column(String(40))  # default:<table date> | MODEL_PRICES | ...
    price_rates: Mapped[Optional[str]] = mapped_column(Text)  # the model's Price as JSON

    metric: Mapped[Optional[Metric]] = relationship()
    exchange: Mapped[Optional["Exchange"]] = relationship(back_populates="request", cascade="all, delete-orphan")
    attempts: Mapped[list["Attempt"]] = relationship(
        back_populates="request", cascade="all, delete-orphan", order_by="Attempt.number"
    )

    # Analytics filter a time window first, then a dimension; the first index also covers the
    # columns the summary reads, so a window's totals never touch the table itself.
    __table_args__ = (
        Index("ix_request_log_created_at", "created_at", "status_code", "latency_ms", "prompt_tokens",
              "completion_tokens", "total_tokens", "model_used", "cache_status"),
        Index("ix_request_log_model_created", "model_used", "created_at"),
        Index("ix_request_log_route_created", "route", "created_at"),
        Index("ix_request_log_status_created", "status_code", "created_at"),
        Index("ix_request_log_client_created", "client_id", "created_at"),
    )


class Attempt(db.Model):
    """One upstream call made while serving a request."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_log_id: Mapped[int] = mapped_column(
        ForeignKey("request_log.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    model: Mapped[str] = mapped_column(String(100))
    key_id: Mapped[Optional[str]] = mapped_column(String(24))  # fingerprint, never the key
    # ok | quota | transient | timeout | untrusted | key_rejected | not_found | rejected | error | blocked
    outcome: Mapped[str] = mapped_column(String(20))
    status_code: Mapped[Optional[int]]
    error_code: Mapped[Optional[str]] = mapped_column(String(64))
    error_message: Mapped[Optional[str]] = mapped_column(Text)
    latency_ms: Mapped[float]

    request: Mapped[RequestLog] = relationship(back_populates="attempts")


class Exchange(db.Model):
    """A native pass-through call as it crossed the proxy: secrets redacted, bodies kept apart."""

    __tablename__ = "exchanges"

    id: Mapped[int] = mapped_column(primary_key=True)
    request_log_id: Mapped[int] = mapped_column(
        ForeignKey("request_log.id", ondelete="CASCADE"), unique=True
    )
    path: Mapped[str] = mapped_column(Text)
    query: Mapped[Optional[str]] = mapped_column(Text)  # with key= removed
    action: Mapped[Optional[str]] = mapped_column(String(60))  # generateContent, countTokens, ...
    stream_format: Mapped[Optional[str]] = mapped_column(String(10))  # sse | json
    key_source: Mapped[str] = mapped_column(String(10))  # client | server
    upstream_status: Mapped[Optional[int]]
    aborted: Mapped[Optional[str]] = mapped_column(String(20))  # client | upstream, when cut short
    request_headers: Mapped[Optional[str]] = mapped_column(Text)  # JSON, redacted
    response_headers: Mapped[Optional[str]] = mapped_column(Text)  # JSON
    request_bytes: Mapped[int] = mapped_column(default=0)
    response_bytes: Mapped[int] = mapped_column(default=0)
    top_p: Mapped[Optional[float]]
    top_k: Mapped[Optional[int]]
    thoughts_tokens: Mapped[Optional[int]]
    cached_tokens: Mapped[Optional[int]]
    # A Live session's (WebSocket): what it carried, and the code it was closed with.
    turns: Mapped[Optional[int]]
    client_messages: Mapped[Optional[int]]
    server_messages: Mapped[Optional[int]]
    media_in_bytes: Mapped[Optional[int]]  # audio and video, counted, never stored
    media_out_bytes: Mapped[Optional[int]]
    close_code: Mapped[Optional[int]]

    request: Mapped[RequestLog] = relationship(back_populates="exchange")
    body: Mapped[Optional["ExchangeBody"]] = relationship(back_populates="exchange", cascade="all, delete-orphan")


class ExchangeBody(db.Model):
    """The request and response bodies of an exchange, zlib-compressed, possibly capped."""

    __tablename__ = "exchange_bodies"

    id: Mapped[int] = mapped_column(primary_key=True)
    exchange_id: Mapped[int] = mapped_column(ForeignKey("exchanges.id", ondelete="CASCADE"), unique=True)
    request_body: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    response_body: Mapped[Optional[bytes]] = mapped_column(LargeBinary)
    request_truncated: Mapped[bool] = mapped_column(default=False)
    response_truncated: Mapped[bool] = mapped_column(default=False)

    exchange: Mapped[Exchange] = relationship(back_populates="body")


class CacheEntry(db.Model):
    """A complete answer (a GenerateContentResponse, zlib-compressed) under its request's hash."""

    __tablename__ = "cache_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(64), unique=True)  # sha256 of what determines the answer
    model: Mapped[str] = mapped_column(String(100))
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime]
    last_used_at: Mapped[datetime] = mapped_column(index=True)
    hits: Mapped[int] = mapped_column(default=0)


class RolledHour(db.Model):
    """An hour of the request log that the rollup tables below hold, aggregated (hours as text, UTC)."""

    __tablename__ = "rolled_hours"

    hour: Mapped[str] = mapped_column(String(19), primary_key=True)  # "YYYY-MM-DD HH:00:00"
    built_at: Mapped[datetime] = mapped_column(default=utcnow)


class HourlyRollup(db.Model):
    """Counts and sums of one hour's requests per combination of the dimensions reports filter and group by."""

    __tablename__ = "hourly_rollups"

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[str] = mapped_column(String(19))
    route: Mapped[str] = mapped_column(String(200))
    model_used: Mapped[Optional[str]] = mapped_column(String(100))
    status_code: Mapped[int]
    error_code: Mapped[Optional[str]] = mapped_column(String(64))
    client_id: Mapped[Optional[int]]
    cache_status: Mapped[Optional[str]] = mapped_column(String(10))
    first_model: Mapped[Optional[str]] = mapped_column(String(100))  # the model of attempt 1, if any
    requests: Mapped[int]
    prompt_tokens: Mapped[int]
    completion_tokens: Mapped[int]
    total_tokens: Mapped[int]
    latency_sum: Mapped[float]
    upstream_sum: Mapped[float]
    upstream_count: Mapped[int]
    overhead_sum: Mapped[float]  # latency beyond upstream time, over rows that have an upstream time
    ttfb_sum: Mapped[float]
    ttfb_count: Mapped[int]
    retried: Mapped[int]
    retries: Mapped[int]
    # Costs (migration 0005): the billed kinds beyond prompt and completion, whether the rows are a batch's,
    # and the sum of their stored costs; costed is false for rows written before costs were stored (their
    # cost is computed at read time from these sums).
    cached_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    thoughts_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    tool_use_prompt_tokens: Mapped[int] = mapped_column(default=0, server_default="0")
    batch: Mapped[bool] = mapped_column(default=False, server_default=false())
    costed: Mapped[bool] = mapped_column(default=True, server_default=true())
    cost_usd: Mapped[float] = mapped_column(default=0.0, server_default="0")

    __table_args__ = (Index("ix_hourly_rollups_hour", "hour"),)


class HourlyAttempts(db.Model):
    """Upstream attempts per hour, by outcome and status, under the dimensions of their request."""

    __tablename__ = "hourly_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    hour: Mapped[str] = mapped_column(String(19))
    route: Mapped[str] = mapped_column(String(200))
    model_used: Mapped[Optional[str]] = mapped_column(String(100))
    status_code: Mapped[int]
    client_id: Mapped[Optional[int]]
    outcome: Mapped[str] = mapped_column(String(20))
    attempt_status: Mapped[Optional[int]]
    attempts: Mapped[int]

    __table_args__ = (Index("ix_hourly_attempts_hour", "hour"),)


class HourlyHistogram(db.Model):
    """Latency (or time to first byte) counts per log-scale bucket, per hour and scope.

    A scope is "" for all requests or one filter ("model:gemini-2.5-flash", "route:...", "status:200",
    "client:3"), so a filtered percentile reads only its own rows."""

    __tablename__ = "hourly_histograms"

    id: Mapped[int] = mapped_column(primary_key=True)
    scope: Mapped[str] = mapped_column(String(220))
    metric: Mapped[str] = mapped_column(String(10))  # latency | ttfb
    hour: Mapped[str] = mapped_column(String(19))
    bucket: Mapped[int]
    count: Mapped[int]

    __table_args__ = (Index("ix_hourly_histograms_scope", "scope", "metric", "hour"),)


class OwnedResource(db.Model):
    """A stateful resource made at Gemini through a server key (a cache, a batch, a file, an operation,
    an interaction, a store...): the key whose project holds it, and the client it belongs to."""

    __tablename__ = "owned_resources"

    name: Mapped[str] = mapped_column(String(300), primary_key=True)  # Google's name: cachedContents/abc
    kind: Mapped[str] = mapped_column(String(32))  # the collection: files, cachedContents, batches, ...
    key_id: Mapped[str] = mapped_column(String(24))  # the server key's fingerprint, never the key
    client_id: Mapped[Optional[int]] = mapped_column(ForeignKey("api_clients.id", ondelete="SET NULL"), index=True)
    model: Mapped[Optional[str]] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[Optional[datetime]]  # a batch or operation, when the proxy first saw it finished
    usage_counted_at: Mapped[Optional[datetime]]  # a batch's usage, counted once
    deleted_at: Mapped[Optional[datetime]]
    # A batch's estimated cost, counted as spent against its client's budgets until its usage is (access.budgets)
    budget_micro: Mapped[Optional[int]] = mapped_column(BigInteger)  # micro-dollars
    budget_scopes: Mapped[Optional[str]] = mapped_column(String(64))  # "client id:period,..." it counted against
    budget_at: Mapped[Optional[datetime]]  # when it was counted: the period it was counted in
    budget_settled_at: Mapped[Optional[datetime]]  # when the real cost replaced it: exactly once
