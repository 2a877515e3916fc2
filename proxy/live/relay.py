"""One Live session relayed: the client's setup checked, a key chosen, Gemini's socket opened, and every
frame passed on both ways as it comes, while the session's turns, tokens and end are noted for its record."""
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Optional

from simple_websocket import ConnectionClosed

from .. import shutdown
from ..errors import ModelNotAllowed
from ..upstream.chain import PERMITTED
from ..upstream.live_socket import Unreachable, connect, live_url
from ..wire import live as wire
from .capture import FrameLog

log = logging.getLogger(__name__)

CLIENT, SERVER = "client", "server"  # whose key the session runs on: the client's own, or the pool's

# How a session ended, as its record says (finish_reason).
CLIENT_CLOSED, UPSTREAM_CLOSED, QUOTA, LIMIT, REFUSED, ERROR, SHUTDOWN, BUDGET = (
    "client_close", "upstream_close", "quota", "session_limit", "refused", "error", "shutdown", "budget")
# A waiting leg is woken when the session ends (_end sets its socket's event); this is only a safety net,
# long enough that a thousand idle sessions cost no CPU.
_POLL_SECONDS = 30.0
_KEY_REFUSALS = ("api key", "api_key", "permission", "unregistered callers")


@dataclass(frozen=True)
class LiveKey:
    """Which key a session goes on with: the client's own (or its ephemeral token), in the slot it came in,
    or the pool's."""

    source: str  # client | server
    key: Optional[str] = field(default=None, repr=False)
    where: Optional[str] = None  # header | query | bearer | token | access_token


@dataclass
class SessionNotes:
    """What the record of a session says, filled in as it runs."""

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    model: Optional[str] = None
    key_id: Optional[str] = None
    key_source: str = SERVER
    ended: Optional[str] = None
    close_code: Optional[int] = None
    close_reason: str = ""
    turns: int = 0
    client_messages: int = 0
    server_messages: int = 0
    media_in: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    media_out: int = 0
    usage: wire.SessionUsage = field(default_factory=wire.SessionUsage)
    handle: Optional[str] = None  # the last resumption handle Gemini gave (kept with the key, by digest)
    attempts: list = field(default_factory=list)  # (key_id, outcome, close code, message, started, ms)


class SessionEnded(Exception):
    """Raised inside the relay to end the session: `how` goes to the record, code and reason to the client."""

    def __init__(self, how, code, reason):
        super().__init__(reason)
        self.how, self.code, self.reason = how, code, reason


class LiveRelay:
    """Relays one accepted client socket. `account(tokens)` counts a turn's tokens against the client's
    quota as they are reported, and answers how many are left (None: no quota); `spend(usage, model)` counts
    their cost against its budgets, and answers what is left of the tightest (None: no budget)."""

    def __init__(self, app, endpoint, choice, client_id, account, frames_cap, spend=None):
        self.app, self.endpoint, self.choice, self.client_id = app, endpoint, choice, client_id
        self.account = account
        self.spend = spend
        self._budget_spent = False
        self.notes = SessionNotes(key_source=choice.source)
        self.frames = FrameLog(frames_cap)
        self.config = app.config
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._client = self._upstream = None

    # -- the session ------------------------------------------------------------------------------------

    def run(self, client):
        """The whole session, until either side ends it; never raises."""
        self._client = client
        sessions = self.app.extensions["live_sessions"]
        opened = False
        try:
            setup = self._read_setup()
            self.notes.model = setup.model or None
            self.app.extensions["engine"].chain.require_allowed(setup.model or None, PERMITTED)
            opened = sessions.open(self.notes.session_id, self.client_id, self.config["LIVE_SESSIONS_PER_CLIENT"])
            if not opened:
                raise SessionEnded(LIMIT, wire.TRY_LATER,
                                   f"SESSION_LIMIT: at most {self.config['LIVE_SESSIONS_PER_CLIENT']} Live sessions "
                                   "at once for this client")
            self._upstream = self._open_upstream(setup)
            self._relay()
        except SessionEnded as end:
            self._end(end.how, end.code, end.reason)
        except wire.BadFrame as exc:
            self._end(REFUSED, wire.POLICY, f"INVALID_ARGUMENT: {exc}")
        except ModelNotAllowed as exc:
            self._end(REFUSED, wire.POLICY, f"{exc.code}: {exc}")
        except Exception:  # noqa: BLE001 - a session's failure must end it cleanly, and be recorded
            log.exception("Live session %s failed", self.notes.session_id)
            self._end(ERROR, wire.INTERNAL, "INTERNAL: the proxy could not relay this session")
        finally:
            if opened:
                sessions.close(self.notes.session_id)
        return self.notes

    def _read_setup(self):
        frame = self._receive(self._client, self.config["LIVE_SETUP_SECONDS"])
        if frame is None:
            raise SessionEnded(REFUSED, wire.POLICY, "INVALID_ARGUMENT: no setup message came in time")
        setup = wire.read_setup(frame, self.endpoint.constrained)
        self.notes.client_messages += 1
        self.frames.client(wire.without_media(setup.message)[0])
        return setup

    def _receive(self, sock, timeout):
        """The next message, or None when `timeout` passes; ConnectionClosed when that side has gone."""
        return sock.receive(timeout=timeout)

    # -- upstream, key by key -----------------------------------------------------------------------

    def _keys(self, setup):
        engine = self.app.extensions["engine"]
        if self.choice.source == CLIENT:
            return [(None, self.choice)]
        if setup.resumes:
            # A session resumes in the project that began it: on the key that began it, for its client only.
            name = wire.handle_name(setup.resumes)
            owner = self.app.extensions["resource_owners"].find([name]).get(name)
            if owner is not None:
                if not owner.belongs_to(self.client_id):
                    raise SessionEnded(REFUSED, wire.POLICY, "NOT_FOUND: the session resumption handle is invalid or "
                                                             "has expired")
                key = engine.pool.key_with_id(owner.key_id)
                if key is None:
                    raise SessionEnded(REFUSED, wire.POLICY, "RESOURCE_KEY_GONE: the key that began this session "
                                                             "has left the proxy's pool")
                return [(key, None)]
        keys = engine.pool.candidates(model_of(setup))
        if not keys:
            raise SessionEnded(ERROR, wire.TRY_LATER, "UNAVAILABLE: no Gemini key of this proxy can serve now")
        return [(key, None) for key in keys]

    def _open_upstream(self, setup):
        """Gemini's socket, its setup answered; a pool key Gemini refuses hands over to the next."""
        pool = self.app.extensions["engine"].pool
        last = None
        for key, own in self._keys(setup):
            headers, query = self._credentials(key, own)
            url = live_url(self.config["GEMINI_BASE_URL"], self.endpoint.path, query)
            started, clock = time.time(), time.perf_counter()
            key_id = pool.key_id(key) if key else None
            try:
                upstream = connect(url, headers, self.config["UPSTREAM_CONNECT_TIMEOUT_SECONDS"])
            except Unreachable as exc:
                self._attempt(key_id, "refused" if exc.status else "unreachable", exc.status, str(exc), started, clock)
                last = SessionEnded(ERROR, wire.INTERNAL, f"UNAVAILABLE: {exc}")
                if exc.status in (401, 403) and key:
                    pool.rest(key, setup.model or "live", self.config["QUOTA_COOLDOWN_SECONDS"], "rejected")
                    continue
                raise last from None
            try:
                upstream.send(setup.encoded())
                answer = self._receive(upstream, self.config["UPSTREAM_TIMEOUT_SECONDS"])
            except ConnectionClosed as closed:
                code, message = closed.reason, closed.message or ""
                self._attempt(key_id, "refused", code, message, started, clock)
                if key and any(word in message.lower() for word in _KEY_REFUSALS):
                    pool.rest(key, setup.model or "live", self.config["QUOTA_COOLDOWN_SECONDS"], "rejected")
                    last = SessionEnded(UPSTREAM_CLOSED, code, message)
                    continue
                raise SessionEnded(UPSTREAM_CLOSED, code, message) from None
            if answer is None:
                _close_quietly(upstream, wire.GOING_AWAY, "setup unanswered")
                self._attempt(key_id, "timeout", None, "setup unanswered in time", started, clock)
                raise SessionEnded(ERROR, wire.INTERNAL, "DEADLINE_EXCEEDED: Gemini did not answer the setup in time")
            self._attempt(key_id, "ok", 101, None, started, clock)
            self.notes.key_id = key_id
            self._from_upstream(answer)
            return upstream
        raise last or SessionEnded(ERROR, wire.INTERNAL, "UNAVAILABLE: no Gemini key took the session")

    def _credentials(self, key, own):
        """(headers, query) that carry the key upstream, in the slot the client used for its own."""
        if own is None:
            return {"x-goog-api-key": key}, None
        if own.where == "query":
            return {}, {"key": own.key}
        if own.where == "bearer":
            return {"Authorization": f"Bearer {own.key}"}, None
        if own.where == "token":
            return {"Authorization": f"Token {own.key}"}, None
        if own.where == "access_token":
            return {}, {"access_token": own.key}
        return {"x-goog-api-key": own.key}, None

    def _attempt(self, key_id, outcome, code, message, started, clock):
        self.notes.attempts.append((key_id, outcome, code, message, started,
                                    round((time.perf_counter() - clock) * 1000, 3)))

    # -- the relay ----------------------------------------------------------------------------------------

    def _relay(self):
        listening = self._shutdown_notice
        shutdown.listen(listening)
        pump = threading.Thread(target=self._pump_upstream, name=f"live-{self.notes.session_id[:8]}", daemon=True)
        pump.start()
        try:
            while not self._done.is_set():
                try:
                    frame = self._receive(self._client, _POLL_SECONDS)
                except ConnectionClosed as closed:
                    self._end(CLIENT_CLOSED, wire.NORMAL, "", client_code=closed.reason)
                    break
                if frame is None:
                    continue
                message = wire.read_client_frame(frame)
                self.notes.client_messages += 1
                self.notes.bytes_in += len(frame)
                self.notes.media_in += message.media_bytes
                self.frames.client_text(message.stored)
                try:
                    self._upstream.send(message.encoded)
                except ConnectionClosed:
                    break  # the pump has seen the upstream end, and says how
        finally:
            shutdown.forget(listening)
        pump.join(self.config["UPSTREAM_TIMEOUT_SECONDS"])

    def _pump_upstream(self):
        """Gemini's messages to the client, as they come, until Gemini or the session ends."""
        try:
            while not self._done.is_set():
                try:
                    frame = self._receive(self._upstream, _POLL_SECONDS)
                except ConnectionClosed as closed:
                    self._end(UPSTREAM_CLOSED, closed.reason or wire.NORMAL, closed.message or "")
                    return
                if frame is not None:
                    self._from_upstream(frame)
        except SessionEnded as end:
            self._end(end.how, end.code, end.reason)
        except Exception:  # noqa: BLE001
            log.exception("Live session %s: relaying Gemini's messages failed", self.notes.session_id)
            self._end(ERROR, wire.INTERNAL, "INTERNAL: the proxy could not relay this session")

    def _from_upstream(self, frame):
        news = wire.read_server_frame(frame)
        notes = self.notes
        notes.server_messages += 1
        notes.bytes_out += len(frame)
        notes.media_out += news.media_bytes
        self.frames.server_text(news.stored)
        try:
            self._client.send(frame)
        except ConnectionClosed:
            raise SessionEnded(CLIENT_CLOSED, wire.NORMAL, "") from None
        if news.turn_complete:
            notes.turns += 1
        if news.handle:
            notes.handle = news.handle
        if news.usage is not None:
            before = notes.usage.total
            notes.usage.add(news.usage)
            left = self.account(notes.usage.total - before)
            if left is not None and left <= 0:
                raise SessionEnded(QUOTA, wire.POLICY, "TOKEN_QUOTA_EXCEEDED: this client's daily token quota "
                                                       "is used up")
            if self.spend is not None:
                budget_left = self.spend(news.usage, notes.model)
                self._budget_spent = budget_left is not None and budget_left <= 0
        if self._budget_spent and news.turn_complete:  # the turn that ran over is let finish, then the end
            raise SessionEnded(BUDGET, wire.POLICY, "BUDGET_EXCEEDED: this key's (or the operator's) budget is "
                                                    "spent for this period")

    # -- ending -------------------------------------------------------------------------------------------

    def _shutdown_notice(self):
        """The worker is stopping: Gemini's goAway to the client, then the end once the notice runs out."""
        seconds = self.config["LIVE_GOAWAY_SECONDS"]
        try:
            self._client.send(wire.go_away(seconds))
        except ConnectionClosed:
            return
        timer = threading.Timer(seconds, self._end, (SHUTDOWN, wire.GOING_AWAY, "UNAVAILABLE: the proxy is restarting; "
                                                                                "reconnect"))
        timer.daemon = True
        timer.start()

    def _end(self, how, code, reason, client_code=None):
        """End the session once: both sockets closed, the client told why."""
        with self._lock:
            if self.notes.ended is not None:
                return
            notes = self.notes
            notes.ended, notes.close_code, notes.close_reason = how, client_code or code, reason
        self._done.set()
        if how != CLIENT_CLOSED:
            _close_quietly(self._client, code if _sendable(code) else wire.INTERNAL, wire.reason(reason))
        if self._upstream is not None:
            _close_quietly(self._upstream, wire.NORMAL, "")


def model_of(setup):
    return setup.model or "live"


def _sendable(code):
    """Whether a close code may be sent in a close frame (1005, 1006 and 1015 may not)."""
    return isinstance(code, int) and (1000 <= code <= 1014 and code not in (1004, 1005, 1006) or 3000 <= code < 5000)


def _close_quietly(sock, code, reason):
    if sock is None:
        return
    try:
        sock.close(reason=code, message=reason or None)
    except (ConnectionClosed, OSError):
        pass
    # simple-websocket wakes a waiting receive only when the peer answers the close: wake it now, so the
    # leg waiting on this socket sees it closed and ends.
    sock.event.set()
