"""Realistic synthetic history for benchmarks: diurnal traffic, a model mix, failures, retries; optionally a
known trend, weekly pattern and clients, so a forecast can be checked against the truth (Pattern.expected)."""
import hashlib
import math
import random
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone

from models import ApiClient, Attempt, Metric, RequestLog, db

from .facts import ONE_HOUR, hour_text
from .rollups import forget

_MODELS = [("gemini-2.5-flash", 0.70), ("gemini-2.5-flash-lite", 0.22), ("gemini-2.5-pro", 0.08)]
_ROUTES = [("/gemini/generate", 0.45), ("/v1beta/models/{model}:generateContent", 0.25),
           ("/v1beta/models/{model}:streamGenerateContent", 0.25), ("/gemini-proxy", 0.05)]
_FAILURES = [(502, "UPSTREAM_ERROR", 0.008), (429, "QUOTA_EXHAUSTED", 0.006), (400, "INVALID_REQUEST", 0.006),
             (504, "DEADLINE_EXCEEDED", 0.002)]
_BATCH = 20_000
# Monday first: busy working days, quiet weekends (the --weekly pattern).
WEEKLY = (1.10, 1.15, 1.10, 1.05, 1.00, 0.40, 0.30)
_SUCCESS = 1 - sum(share for _, _, share in _FAILURES)  # only answered requests carry tokens
# Means of the token draws below (lognormal: exp(mu + sigma^2 / 2)), less the half token int() drops.
_MEAN_PROMPT, _MEAN_COMPLETION = math.exp(5.5 + 0.5) - 0.5, math.exp(5.0 + 0.32) - 0.5


def _diurnal(hour):
    """Busier in the working day (UTC 08-18) than at night: the chance a drawn moment is kept."""
    return 0.35 + 0.65 * (0.5 + 0.5 * math.sin((hour - 7) / 24 * 2 * math.pi))


@dataclass(frozen=True)
class Pattern:
    """The traffic's intensity: diurnal, times the weekly pattern, times a level growing linearly by `trend`
    (a share of the last day's level) per day, equal to 1 at `end`."""

    end: datetime
    days: int
    trend: float = 0.0
    weekly: bool = False

    def level(self, moment):
        return max(0.05, 1 + self.trend * (moment - self.end) / timedelta(days=1))

    def weight(self, moment):
        week = WEEKLY[moment.weekday()] if self.weekly else 1.0
        return _diurnal(moment.hour) * week * self.level(moment)

    @property
    def peak(self):
        return (max(WEEKLY) if self.weekly else 1.0) * max(self.level(self.end),
                                                            self.level(self.end - timedelta(days=self.days)))

    def _integral(self, start, end):
        """The intensity integrated over [start, end) in hours, hour by hour (constant within an hour but
        for the level, taken at each piece's middle)."""
        total, moment = 0.0, start
        while moment < end:
            stop = min(moment.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1), end)
            total += self.weight(moment + (stop - moment) / 2) * ((stop - moment) / timedelta(hours=1))
            moment = stop
        return total

    def expected(self, rows, start, end, prices=None):
        """The expected requests, tokens and (with a PriceTable) cost of `rows` seeded with this pattern,
        falling in [start, end), which may lie past `end` (the pattern goes on)."""
        share = self._integral(start, end) / self._integral(self.end - timedelta(days=self.days), self.end)
        requests = rows * share
        result = {"requests": requests, "tokens": requests * _SUCCESS * (_MEAN_PROMPT + _MEAN_COMPLETION)}
        if prices is not None:
            per_request = sum(weight * (_MEAN_PROMPT * prices.rates(model).input
                                        + _MEAN_COMPLETION * prices.rates(model).output) / 1_000_000
                              for model, weight in _MODELS)
            result["cost_usd"] = requests * _SUCCESS * per_request
        return result


def _pick(rng, weighted):
    point, total = rng.random(), 0.0
    for value, weight in weighted:
        total += weight
        if point < total:
            return value
    return weighted[-1][0]


def _rows(rng, count, pattern, clients=()):
    span, peak = pattern.days * 86400, pattern.peak
    for number in range(count):
        while True:  # rejection sampling: a moment is kept with a chance in proportion to the intensity
            offset = rng.random() * span
            moment = pattern.end - timedelta(seconds=offset)
            if rng.random() < pattern.weight(moment) / peak:
                break
        model = _pick(rng, _MODELS)
        route = _pick(rng, _ROUTES)
        status, code = 200, None
        roll = rng.random()
        for failure_status, failure_code, share in _FAILURES:
            if roll < share:
                status, code = failure_status, failure_code
                break
            roll -= share
        prompt = int(rng.lognormvariate(5.5, 1.0))
        completion = int(rng.lognormvariate(5.0, 0.8))
        latency = rng.lognormvariate(6.6, 0.6)  # about 750 ms median
        retried = rng.random() < 0.03
        yield {"request_id": uuid.UUID(int=rng.getrandbits(128)).hex, "created_at": moment, "route": route,
               "method": "POST", "model_used": model, "model_requested": None, "status_code": status,
               "error_code": code, "latency_ms": latency, "upstream_latency_ms": latency * 0.97,
               "ttfb_ms": latency * 0.3 if "stream" in route else None, "attempt_count": 2 if retried else 1,
               "streamed": "stream" in route, "prompt_tokens": prompt if status == 200 else None,
               "completion_tokens": completion if status == 200 else None,
               "total_tokens": prompt + completion if status == 200 else None,
               "token_source": "usage_metadata", "finish_reason": "STOP" if status == 200 else None,
               "client_id": _pick(rng, clients) if clients else None}


def synthetic_clients(count):
    """`count` clients named synthetic-1.. (made if missing), weighted 1/n so the first is the busiest; their
    key hashes are of no key anyone holds."""
    found = []
    for number in range(1, count + 1):
        name = f"synthetic-{number}"
        client = db.session.execute(db.select(ApiClient).where(ApiClient.name == name)).scalars().first()
        if client is None:
            client = ApiClient(name=name, key_hash=hashlib.sha256(f"synthetic:{uuid.uuid4()}".encode()).hexdigest(),
                               key_prefix="synthetic", source="cli")
            db.session.add(client)
            db.session.flush()
        found.append(client.id)
    weights = [1 / n for n in range(1, count + 1)]
    return [(client_id, weight / sum(weights)) for client_id, weight in zip(found, weights)]


def seed(count, days=30, seed_value=42, end=None, progress=None, trend=0.0, weekly=False, clients=0):
    """Insert `count` requests spread over the last `days` days, with attempts and metrics; with `trend`,
    `weekly` and `clients`, in a known Pattern shared among that many synthetic clients."""
    rng = random.Random(seed_value)
    end = end or datetime.now(timezone.utc).replace(tzinfo=None)
    pattern = Pattern(end, days, trend, weekly)
    shares = synthetic_clients(clients) if clients else ()
    connection = db.session.connection()
    inserted, batch = 0, []
    next_id = (db.session.query(db.func.max(RequestLog.id)).scalar() or 0) + 1
    for row in _rows(rng, count, pattern, shares):
        row["id"] = next_id
        next_id += 1
        batch.append(row)
        if len(batch) >= _BATCH:
            inserted += _flush(connection, batch)
            batch = []
            if progress:
                progress(inserted)
    inserted += _flush(connection, batch)
    # Hours that already had rollups now have more rows than their rollups say.
    forget(hour_text(end - timedelta(days=days) - ONE_HOUR), hour_text(end + ONE_HOUR))
    db.session.commit()
    db.session.execute(db.text("ANALYZE"))  # statistics for the planner, as a long-running server would have
    db.session.commit()
    return inserted


def _flush(connection, batch):
    if not batch:
        return 0
    connection.execute(RequestLog.__table__.insert(), batch)
    attempts = []
    for row in batch:
        first_model = "gemini-2.5-flash" if row["attempt_count"] == 2 else row["model_used"]
        attempts.append({"request_log_id": row["id"], "number": 1, "started_at": row["created_at"],
                         "model": first_model, "key_id": "key-synthetic", "latency_ms": row["upstream_latency_ms"],
                         "outcome": "transient" if row["attempt_count"] == 2 else
                         ("ok" if row["status_code"] == 200 else "transient"),
                         "status_code": 503 if row["attempt_count"] == 2 else row["status_code"]})
        if row["attempt_count"] == 2:
            attempts.append({"request_log_id": row["id"], "number": 2, "started_at": row["created_at"],
                             "model": row["model_used"], "key_id": "key-synthetic", "outcome": "ok",
                             "latency_ms": row["upstream_latency_ms"], "status_code": 200})
    connection.execute(Attempt.__table__.insert(), attempts)
    metrics = [{"timestamp": r["created_at"], "prompt_tokens": r["prompt_tokens"],
                "completion_tokens": r["completion_tokens"], "total_tokens": r["total_tokens"],
                "temperature": None, "max_output_tokens": None} for r in batch if r["status_code"] == 200]
    if metrics:
        connection.execute(Metric.__table__.insert(), metrics)
    return len(batch)
