"""The resilience engine: one call along its chain of models, over its keys, retried inside a deadline.

Written once for both APIs; what differs between them is the transport (the SDK or raw HTTP) and the
plan a call brings: its chain, its keys, how many tries a model gets and which failures are worth one."""
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Callable, Optional

from .failures import KEY_REJECTED, NOT_FOUND, QUOTA, UpstreamFailure
from .keysources import NONE_LEFT, FixedKey, PoolKeys, own_key
from .messages import AttemptRecord
from .retry import backoff, delay_for, is_retryable
from .transport import Try

log = logging.getLogger(__name__)

# Why a call ended without an answer (GaveUp.reason).
STOPPED = "stopped"  # a failure neither retry nor fallback can mend: the request refused, an untrusted TLS peer
EXHAUSTED = "exhausted"  # every model of the chain gave up
DEADLINE = "deadline"  # the deadline passed before another attempt could begin
NO_TIME_TO_RETRY = "no_time_to_retry"  # the next backoff would end past the deadline

# A key Gemini calls invalid will not heal by itself soon; rest it long, but not forever,
# so a key fixed on Google's side comes back without a restart.
REJECTED_KEY_REST = 3600.0  # seconds


class NoKeys(Exception):
    """The server's pool holds no key at all."""


@dataclass
class Plan:
    chain: list  # models in the order they are tried; [None] for a call that names none
    keys: object  # a KeySource
    max_attempts: int  # tries per model for a retryable failure
    retryable: Callable = is_retryable  # the predicate: is this failure worth another try on the same model?


@dataclass
class Trail:
    attempts: list = field(default_factory=list)  # AttemptRecord, one per attempt, in order
    failures: dict = field(default_factory=dict)  # model -> the failure it gave up on
    last: Optional[UpstreamFailure] = None  # the last attempt's failure


class GaveUp(Exception):
    """The call ended without an answer; `reason` says why, `last` is the last attempt's failure."""

    def __init__(self, reason, trail, failure=None):
        super().__init__(reason)
        self.reason, self.failure = reason, failure
        self.attempts, self.failures, self.last = trail.attempts, trail.failures, trail.last


class _NextModel(Exception):
    """Retry gave up on this model: fallback takes over."""

    def __init__(self, failure):
        super().__init__(failure.message)
        self.failure = failure


class Engine:
    def __init__(self, pool, chain, policy, *, deadline, quota_cooldown, clock=time.monotonic, sleep=time.sleep,
                 rng=random.random):
        self.pool = pool  # the server's keys, shared by both APIs: a key resting after a 429 rests for all
        self.chain = chain  # ModelChain
        self.policy = policy
        self.deadline = deadline  # seconds for all attempts of one request
        self.quota_cooldown = quota_cooldown  # seconds, when a 429 says nothing of when to return
        self.clock, self.sleep, self.rng = clock, sleep, rng
        self._server_keys = PoolKeys(pool)

    def server_keys(self):
        if not len(self.pool):
            raise NoKeys()
        return self._server_keys

    def own_keys(self, api_key):
        return own_key(api_key, self.pool.clock)

    def pinned_key(self, key_id):
        """The pool's key of that fingerprint as the call's only key, or None if the pool no longer holds it."""
        key = self.pool.key_with_id(key_id)
        return None if key is None else FixedKey(key, self.pool.key_id(key))

    def run(self, plan, transport, job):
        """(answer, the model that gave it, the attempts) for the first answer along the plan's chain;
        raises GaveUp when there is none."""
        deadline = self.clock() + self.deadline
        trail = Trail()
        for model in plan.chain:
            try:
                return self._retry(plan, transport, job, model, deadline, trail), model, trail.attempts
            except _NextModel as exc:
                trail.failures[model] = exc.failure
                log.warning("model %s unavailable (%s): %s", model, exc.failure.kind, exc.failure.message)
        raise GaveUp(EXHAUSTED, trail)

    def _retry(self, plan, transport, job, model, deadline, trail):
        """Try one model until it answers or retry gives up on it (_NextModel), or the call ends (GaveUp)."""
        delays, tries, last = backoff(self.policy, self.rng), 0, None
        slot = model or "*"
        while True:
            picked = plan.keys.pick(slot)
            if picked is NONE_LEFT:  # name what put the last key to rest, when this call saw it happen
                raise _NextModel(last or UpstreamFailure(QUOTA, f"every key is cooling down for {model}"))
            key, key_id = picked
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise GaveUp(DEADLINE, trail)
            try:
                return self._attempt(transport, job, Try(model, key, key_id, remaining), trail)
            except UpstreamFailure as exc:
                failure = last = trail.last = exc
            if failure.kind in (QUOTA, KEY_REJECTED):
                if not plan.keys.restable:
                    raise _NextModel(failure)
                self._rest(plan.keys, key, slot, failure)
                continue  # another key for the same model, at once
            if failure.kind == NOT_FOUND:
                raise _NextModel(failure)
            if not plan.retryable(failure):
                raise GaveUp(STOPPED, trail, failure)
            tries += 1
            if tries >= plan.max_attempts:
                raise _NextModel(failure)
            wait = delay_for(failure, next(delays), self.policy)
            if self.clock() + wait >= deadline:
                raise GaveUp(NO_TIME_TO_RETRY, trail, failure)
            self.sleep(wait)

    def _rest(self, keys, key, slot, failure):
        if failure.kind == QUOTA:
            keys.rest_for_quota(key, slot, failure, self.quota_cooldown)
        else:  # rejected: for every model, since a bad key is bad for all of them
            for each in self.chain.models + [slot]:
                keys.rest(key, each, REJECTED_KEY_REST, "key_rejected")

    def _attempt(self, transport, job, attempt, trail):
        """One call through the transport, recorded whatever it comes to."""
        started, started_at = self.clock(), datetime.now(timezone.utc).replace(tzinfo=None)
        try:
            result = failure = transport.send(job, attempt)
        except UpstreamFailure as exc:
            result = failure = exc
        else:
            failure = None
        trail.attempts.append(AttemptRecord(
            number=len(trail.attempts) + 1, model=attempt.model or "-", key_id=attempt.key_id,
            latency_ms=(self.clock() - started) * 1000, started_at=started_at, **transport.recorded(result)))
        if failure is None:
            return result
        log.info("attempt %d on %s with %s failed: %s %s", len(trail.attempts), attempt.model or "-",
                 attempt.key_id, failure.kind, failure.status or "")
        raise failure
