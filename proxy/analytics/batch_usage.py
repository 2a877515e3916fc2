"""A batch's usage, counted once: when a batch made through a server key has succeeded, one request-log
record (batch=True, half price) carries the tokens of all its answers, for its owner's reports and quota.

Whoever first sees the batch finished counts it: the pass-through reading a client's GET batches/{id}, or
the poller, which asks Gemini about the batches nobody has polled. Which one wins is settled in the
database (owned_resources.usage_counted_at), so every worker and instance may try."""
import hashlib
import json
import logging
import urllib.parse

import urllib3
from flask import current_app
from sqlalchemy import func, select, update

from models import OwnedResource, db, utcnow
from ..periodic import one_per_deployment, run_every
from ..storage.records import RequestRecord
from ..wire.stream import iter_json_objects
from ..wire.usage import Usage

log = logging.getLogger(__name__)

ROUTE = "batches.usage"
KIND = "batches"
# Gemini API's spelling and the SDK's (python-genai's JobState, Vertex AI's).
SUCCEEDED = {"BATCH_STATE_SUCCEEDED", "JOB_STATE_SUCCEEDED"}
ENDED = SUCCEEDED | {f"{prefix}_{end}" for prefix in ("BATCH_STATE", "JOB_STATE")
                     for end in ("FAILED", "CANCELLED", "EXPIRED", "PARTIALLY_SUCCEEDED")}
POLL_LIMIT = 20  # batches asked about per poller run
POLL_SECONDS = 300.0  # between poller runs, unless BATCH_USAGE_INTERVAL_SECONDS says otherwise (0: off)
_TIMEOUT = urllib3.Timeout(connect=10.0, read=60.0)  # seconds: one GET of a batch or of its responses file
_VERSION = "v1beta"


def state_of(batch):
    """The batch's state, from its Operation (metadata.state) or from the batch itself (state)."""
    if not isinstance(batch, dict):
        return None
    metadata = batch.get("metadata")
    state = metadata.get("state") if isinstance(metadata, dict) else None
    return state if isinstance(state, str) else (batch.get("state") if isinstance(batch.get("state"), str) else None)


def _output(batch):
    """The batch's output: {inlinedResponses: ...} or {responsesFile: name}, wherever this shape keeps it."""
    for holder in (batch.get("metadata"), batch.get("response"), batch):
        if isinstance(holder, dict):
            output = holder.get("output", holder)
            if isinstance(output, dict) and ("inlinedResponses" in output or "responsesFile" in output):
                return output
    return {}


def _inlined(output):
    inlined = output.get("inlinedResponses")
    if isinstance(inlined, dict):
        inlined = inlined.get("inlinedResponses")
    return inlined if isinstance(inlined, list) else []


def _summed(answers):
    total = Usage()
    for answer in answers:
        response = answer.get("response") if isinstance(answer, dict) else None
        if isinstance(response, dict):
            total = total.plus(Usage.from_gemini(response.get("usageMetadata")))
    return total


def _answers(lines):
    """The JSON objects of a responses file's lines (bytes), one line at a time."""
    for line in lines:
        yield from iter_json_objects(line.decode("utf-8", errors="replace"))


def usage_of(batch, download):
    """The summed usage of a finished batch's answers: inline, or in its responses file, whose lines
    (bytes) `download(file name)` yields (None when it cannot); None when the file could not be had."""
    output = _output(batch)
    responses_file = output.get("responsesFile")
    if isinstance(responses_file, str) and responses_file:
        lines = download(responses_file)
        return None if lines is None else _summed(_answers(lines))
    return _summed(_inlined(output))


def _model(batch, owner):
    metadata = batch.get("metadata") if isinstance(batch.get("metadata"), dict) else batch
    model = metadata.get("model")
    if isinstance(model, str) and model:
        return model.removeprefix("models/")[:100]
    return owner.model


def _request_id(name):
    """Unique per batch, so the record itself can be written only once too."""
    return f"batch-usage-{hashlib.sha256(name.encode()).hexdigest()[:40]}"


def _settled(name, cost_usd):
    """Tell the budgets (access.batch_budgets.settle_batch, installed by the app factory) what the batch really cost: it
    replaces the estimate they counted at its creation, once, whoever calls first."""
    hook = current_app.extensions.get("batch_settled")
    if hook is not None:
        hook(name, cost_usd)


def _note_ended(name, now):
    db.session.execute(update(OwnedResource).where(OwnedResource.name == name, OwnedResource.ended_at.is_(None))
                       .values(ended_at=now))
    db.session.commit()
    _settled(name, 0.0)  # failed, cancelled, expired or gone: billed nothing, so the estimate comes back


def claim(name, now):
    """True for the one caller that marks the batch's usage counted (and the batch ended); every other
    gets False."""
    claimed = db.session.execute(
        update(OwnedResource).where(OwnedResource.name == name, OwnedResource.usage_counted_at.is_(None))
        .values(usage_counted_at=now, ended_at=func.coalesce(OwnedResource.ended_at, now)))
    db.session.commit()
    return claimed.rowcount == 1


def count_if_finished(name, batch, download=lambda file_name: None, now=None):
    """When `batch` (the JSON of GET batches/{id}) has succeeded and its usage is not counted yet: claim it
    and hand one record of its usage to the writer. Returns that record, or None."""
    state = state_of(batch)
    if state not in ENDED:
        return None
    now = now or utcnow()
    owner = db.session.execute(select(OwnedResource).where(OwnedResource.name == name)).scalar_one_or_none()
    db.session.commit()
    if owner is None or owner.kind != KIND or owner.usage_counted_at is not None:
        return None
    if state not in SUCCEEDED:
        _note_ended(name, now)  # failed, cancelled or expired: billed nothing, and not asked about again
        return None
    usage = usage_of(batch, download)
    if usage is None or not claim(name, now):
        return None
    record = RequestRecord(
        request_id=_request_id(name), created_at=now, route=ROUTE, method="GET", status_code=200, latency_ms=0.0,
        client_id=owner.client_id, model_requested=owner.model, model_used=_model(batch, owner), attempt_count=0,
        streamed=False, token_source="usage_metadata" if usage else None, batch=True).with_usage(usage)
    records = current_app.extensions["records"]
    records.finished(record)  # its observers (metrics, token quotas, its cost) see it as any request's
    _settled(name, record.cost_usd or 0.0)
    records.submit(record)
    log.info("counted the usage of %s for client %s: %s tokens", name, owner.client_id, usage.total)
    return record


# Asking Gemini ------------------------------------------------------------------------------------------

class BatchReader:
    """GETs of a batch and of its responses file, on the key that holds them, over the pass-through's
    connections to Gemini."""

    def __init__(self, transport):
        self.base_url, self.http = transport.base_url, transport.http

    def _get(self, key, target, whole=True):
        try:
            reply = self.http.request("GET", self.base_url + target, headers={"x-goog-api-key": key},
                                      timeout=_TIMEOUT, redirect=False, retries=False, preload_content=whole)
        except urllib3.exceptions.HTTPError as exc:
            log.warning("Gemini did not answer %s: %s", target.split("?")[0], type(exc).__name__)
            return None
        return reply

    def batch(self, key, name):
        """(status, the batch's JSON or None)."""
        reply = self._get(key, f"/{_VERSION}/{urllib.parse.quote(name)}")
        if reply is None:
            return None, None
        try:
            return reply.status, json.loads(reply.data) if reply.status == 200 else None
        except ValueError:
            return reply.status, None

    def download(self, key, file_name):
        """The responses file's lines as they arrive (a batch's file may be larger than memory), or None."""
        reply = self._get(key, f"/download/{_VERSION}/{urllib.parse.quote(file_name)}:download?alt=media",
                          whole=False)
        if reply is None or reply.status != 200:
            if reply is not None:
                reply.release_conn()
            return None
        return _lines(reply)


def _lines(reply):
    """A streamed answer's lines, the connection released when they are read (or the reading stops)."""
    try:
        rest = b""
        for chunk in reply.stream(64 * 1024):
            lines = (rest + chunk).split(b"\n")
            rest = lines.pop()
            yield from lines
        if rest:
            yield rest
    finally:
        reply.release_conn()


def _reader(app):
    return BatchReader(app.extensions["forwarder"].transport)


def count_answer(name, batch, key):
    """The pass-through's hook: a client's GET batches/{id} answered on `key` (never raises)."""
    try:
        if state_of(batch) in ENDED:  # a failed one too: its budget estimate comes back at once
            reader = _reader(current_app)
            count_if_finished(name, batch, lambda file_name: reader.download(key, file_name))
    except Exception:  # the client's answer goes on; the poller counts the batch later
        db.session.rollback()
        log.exception("could not count the usage of %s", name)


def poll_once(app, limit=POLL_LIMIT):
    """Ask Gemini about the unfinished batches the proxy knows, oldest first; count those that are done.
    Returns how many were counted."""
    pool, reader = app.extensions["engine"].pool, _reader(app)
    waiting = db.session.execute(
        select(OwnedResource.name, OwnedResource.key_id).where(
            OwnedResource.kind == KIND, OwnedResource.ended_at.is_(None), OwnedResource.deleted_at.is_(None),
            OwnedResource.usage_counted_at.is_(None)).order_by(OwnedResource.created_at).limit(limit)).all()
    db.session.commit()
    counted = 0
    for name, key_id in waiting:
        key = pool.key_with_id(key_id)
        if key is None:
            continue  # its key left the pool: nobody can read it now
        status, batch = reader.batch(key, name)
        if status == 404:
            _note_ended(name, utcnow())  # gone at Google: nothing left to count
        elif batch is not None:
            counted += count_if_finished(name, batch, lambda file_name: reader.download(key, file_name)) is not None
    return counted


def start_batch_poller(app, interval, stop=None):
    """Poll every `interval` seconds, one worker of the deployment at a time."""
    def job(stop):
        with one_per_deployment(app, "batch-usage") as mine:
            counted = poll_once(app) if mine else 0
        return f"counted the usage of {counted} batch(es)" if counted else None

    return run_every(app, "batch-usage", interval, job, stop)
