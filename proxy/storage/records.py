"""The one declared type of a request's record, whichever API served it: a request-log row with its
upstream attempts, its metrics row (a generation Gemini answered) and its native exchange (the pass-through).

Every recorder fills a RequestRecord, and storage.batch writes it. In the spool a record is a plain
mapping of the same fields (to_spooled, from_spooled), the line format the spool has always had."""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from operator import attrgetter
from datetime import datetime
from typing import Optional


@dataclass(slots=True)
class AttemptRow:
    """One upstream call a request made (the attempts table)."""

    number: int
    started_at: Optional[datetime]
    model: Optional[str]
    key_id: Optional[str]  # the key's fingerprint, never the key
    outcome: str
    status_code: Optional[int] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    latency_ms: float = 0.0

    @classmethod
    def of(cls, attempt):
        """From an upstream attempt record (upstream.messages.AttemptRecord, on either API)."""
        return cls(attempt.number, attempt.started_at, attempt.model, attempt.key_id, attempt.outcome,
                   attempt.status_code, attempt.error_code, attempt.error_message, attempt.latency_ms)


@dataclass(slots=True)
class MetricRecord:
    """The metrics row of a generation Gemini answered (not the cache), as the spec has it."""

    timestamp: datetime
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    temperature: Optional[float] = None
    max_output_tokens: Optional[int] = None


@dataclass(slots=True)
class ExchangeBodyRecord:
    """Both bodies of a native exchange, compressed and capped."""

    request_body: Optional[bytes] = None
    response_body: Optional[bytes] = None
    request_truncated: bool = False
    response_truncated: bool = False


@dataclass(slots=True)
class ExchangeRecord:
    """What a native exchange carried: its path and query (no credentials), headers (redacted), sizes."""

    path: str
    key_source: str  # client | server
    query: Optional[str] = None
    action: Optional[str] = None
    stream_format: Optional[str] = None  # sse | json, when streamed
    upstream_status: Optional[int] = None
    aborted: Optional[str] = None  # client | upstream, when cut short
    request_headers: Optional[str] = None  # JSON
    response_headers: Optional[str] = None  # JSON
    request_bytes: int = 0
    response_bytes: int = 0
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    thoughts_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None
    turns: Optional[int] = None  # a Live session's, and what follows
    client_messages: Optional[int] = None
    server_messages: Optional[int] = None
    media_in_bytes: Optional[int] = None
    media_out_bytes: Optional[int] = None
    close_code: Optional[int] = None
    body: Optional[ExchangeBodyRecord] = None


@dataclass(slots=True)
class RequestRecord:
    """One request's record: a generation, a pass-through exchange, a refused request or WORKER_DIED."""

    request_id: str
    created_at: Optional[datetime] = None  # None only in a spooled record the database will refuse
    route: Optional[str] = None
    method: Optional[str] = None  # the column's default (POST) when a spooled record has none
    status_code: Optional[int] = None
    latency_ms: Optional[float] = None
    client_id: Optional[int] = None
    model_requested: Optional[str] = None
    model_used: Optional[str] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None
    upstream_latency_ms: Optional[float] = None
    ttfb_ms: Optional[float] = None
    attempt_count: Optional[int] = None  # None: the column's default (0, not streamed)
    streamed: Optional[bool] = None
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    token_source: Optional[str] = None
    cache_status: Optional[str] = None
    finish_reason: Optional[str] = None
    temperature: Optional[float] = None
    max_output_tokens: Optional[int] = None
    cached_tokens: Optional[int] = None  # part of prompt_tokens
    thoughts_tokens: Optional[int] = None  # billed as output, beside completion_tokens
    tool_use_prompt_tokens: Optional[int] = None
    service_tier: Optional[str] = None
    batch: Optional[bool] = None  # a batch's usage (billed at half price); None: the column's default
    # Its cost, computed once as the record is finished (by an observer: storage knows no prices), and the
    # price it used: its source (default:<table date>, MODEL_PRICES, ...) and rates (JSON).
    cost_usd: Optional[float] = None
    price_source: Optional[str] = None
    price_rates: Optional[str] = None
    attempts: list[AttemptRow] = field(default_factory=list)
    metric: Optional[MetricRecord] = None
    exchange: Optional[ExchangeRecord] = None

    def with_attempts(self, attempts):
        """Set the upstream attempts (upstream.messages.AttemptRecord) and what follows from them."""
        self.attempts = [AttemptRow.of(attempt) for attempt in attempts]
        self.attempt_count = len(attempts)
        self.upstream_latency_ms = sum(attempt.latency_ms for attempt in attempts) if attempts else None
        return self

    def with_usage(self, usage):
        """Set the token counts of a wire.usage.Usage."""
        self.prompt_tokens, self.completion_tokens, self.total_tokens = usage.prompt, usage.candidates, usage.total
        self.cached_tokens, self.thoughts_tokens = usage.cached, usage.thoughts
        self.tool_use_prompt_tokens, self.service_tier = usage.tool_use_prompt, usage.service_tier
        return self

    def to_spooled(self):
        """The spool's mapping of this record (JSON with datetimes and bytes, as storage.spool encodes)."""
        spooled = _mapping(self, _SCALARS)
        spooled["attempts"] = [_mapping(attempt, _ATTEMPT) for attempt in self.attempts]
        spooled["metric"] = _mapping(self.metric, _METRIC) if self.metric is not None else None
        exchange = self.exchange
        if exchange is not None:
            spooled["exchange"] = mapped = _mapping(exchange, _EXCHANGE)
            mapped["body"] = _mapping(exchange.body, _BODY) if exchange.body is not None else None
        else:
            spooled["exchange"] = None
        return spooled

    @classmethod
    def from_spooled(cls, spooled):
        """The record a spooled mapping holds (fields it lacks are None, for the columns' defaults, and keys
        it has that no column takes are ignored); TypeError or AttributeError when it is not one."""
        exchange, metric = spooled.get("exchange"), spooled.get("metric")
        if exchange:
            body = exchange.get("body")
            exchange = _from(ExchangeRecord, _EXCHANGE, dict(exchange, body=_from(ExchangeBodyRecord, _BODY, body)
                                                             if body else None))
        return _from(cls, _SCALARS, dict(
            spooled, attempts=[_from(AttemptRow, _ATTEMPT, attempt) for attempt in spooled.get("attempts") or ()],
            metric=_from(MetricRecord, _METRIC, metric) if metric else None, exchange=exchange or None))


def _names(kind, *nested):
    return tuple(f.name for f in fields(kind) if f.name not in nested)


_SCALARS = _names(RequestRecord, "attempts", "metric", "exchange")
_ATTEMPT, _METRIC, _BODY = _names(AttemptRow), _names(MetricRecord), _names(ExchangeBodyRecord)
_EXCHANGE = _names(ExchangeRecord, "body")
# Reading a record's fields at C speed: a record is spooled on every request's path.
_GETTERS = {names: attrgetter(*names) for names in (_SCALARS, _ATTEMPT, _METRIC, _BODY, _EXCHANGE)}


def _mapping(record, names):
    return dict(zip(names, _GETTERS[names](record)))


def _from(kind, names, mapping):
    """`kind` from a spooled mapping. The spool holds exactly the fields (the fast way); a mapping with a
    field missing or one more (another version's) takes the fields `kind` has, the others None."""
    try:
        return kind(**mapping)
    except TypeError:
        nested = {"attempts", "metric", "exchange", "body"}.intersection(mapping)
        return kind(**{name: mapping.get(name) for name in (*names, *nested)})
