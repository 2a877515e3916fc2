"""The time window and filters every report takes, parsed from the query string."""
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Optional

from models import RequestLog

from ..errors import InvalidRequest

MAX_SPAN = timedelta(days=400)
MAX_CLIENT_ID = 2**63 - 1  # past what the database holds, no client can match


def parse_time(value, name):
    """ISO 8601, with Z or an offset; a time without one is UTC. Returns naive UTC."""
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise InvalidRequest(f"{name}={value!r} is not an ISO 8601 time such as 2026-11-23T08:00:00Z.") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc).replace(tzinfo=None)
    return moment


def int_arg(args, name, minimum=None, maximum=None, default=None):
    """An integer query parameter within bounds, or `default` when it is absent; 400 otherwise (an empty
    value too: /docs says integer)."""
    raw = args.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise InvalidRequest(f"{name}={raw!r} is not an integer.") from None
    if (minimum is not None and value < minimum) or (maximum is not None and value > maximum):
        raise InvalidRequest(f"{name}={raw!r} is out of range.")
    return value


@dataclass(frozen=True)
class Window:
    start: datetime
    end: datetime
    model: Optional[str] = None
    route: Optional[str] = None
    status: Optional[int] = None
    client: Optional[int] = None

    def conditions(self):
        clauses = [RequestLog.created_at >= self.start, RequestLog.created_at < self.end]
        if self.model:
            clauses.append(RequestLog.model_used == self.model)
        if self.route:
            clauses.append(RequestLog.route == self.route)
        if self.status is not None:
            clauses.append(RequestLog.status_code == self.status)
        if self.client is not None:
            clauses.append(RequestLog.client_id == self.client)
        return clauses

    def describe(self):
        stamp = lambda moment: moment.replace(tzinfo=timezone.utc).isoformat()  # noqa: E731
        filters = {k: v for k, v in (("model", self.model), ("route", self.route), ("status", self.status),
                                     ("client", self.client)) if v is not None}
        return {"from": stamp(self.start), "to": stamp(self.end), "filters": filters}


def parse_window(args, now=None):
    now = now or datetime.now(timezone.utc).replace(tzinfo=None)
    end = parse_time(args["to"], "to") if args.get("to") else now
    start = parse_time(args["from"], "from") if args.get("from") else end - timedelta(hours=24)
    if start >= end:
        raise InvalidRequest("from must be earlier than to.")
    if end - start > MAX_SPAN:
        raise InvalidRequest(f"The window may span at most {MAX_SPAN.days} days.")
    return Window(start, end, model=args.get("model") or None, route=args.get("route") or None,
                  status=int_arg(args, "status", 100, 599), client=int_arg(args, "client", 1, MAX_CLIENT_ID))
