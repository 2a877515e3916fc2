"""Generation with retry per model, fallback along the chain, and the key pool's cool-downs."""
import logging
import random
import time
from datetime import datetime, timezone

from ..errors import (
    DeadlineExceeded, NoApiKey, PromptBlocked, QuotaExhausted, ResponseBlocked, UpstreamFailed,
    UpstreamModelNotFound, UpstreamRejected,
)
from .failures import KEY_REJECTED, NOT_FOUND, QUOTA, REJECTED, UNTRUSTED, UpstreamFailure
from .gemini_sdk import BLOCKING_FINISH_REASONS
from .keypool import KeyPool
from .messages import AttemptRecord, Generation
from .retry import backoff, delay_for, is_retryable

log = logging.getLogger(__name__)

# A key Gemini calls invalid will not heal by itself soon; rest it long, but not forever,
# so a key fixed on Google's side comes back without a restart.
_REJECTED_KEY_REST = 3600.0  # seconds


class _ModelUnavailable(Exception):
    """This model cannot answer now; the chain moves on to the next one."""

    def __init__(self, failure):
        super().__init__(failure.message)
        self.failure = failure


class _DeadlinePassed(Exception):
    pass


class GenerationService:
    def __init__(self, sdk, pool, models, policy, *, deadline, upstream_timeout, quota_cooldown,
                 fallback=True, clock=time.monotonic, sleep=time.sleep, rng=random.random):
        self.sdk = sdk
        self.pool = pool
        self.models = list(models)
        self.policy = policy
        self.deadline = deadline  # seconds for all attempts of one request
        self.upstream_timeout = upstream_timeout  # seconds for one attempt
        self.quota_cooldown = quota_cooldown  # seconds, when a 429 says nothing of when to return
        self.fallback = fallback
        self.clock = clock
        self.sleep = sleep
        self.rng = rng

    def chain_for(self, model):
        """The requested model first, then the operator's chain in order."""
        first = model or self.models[0]
        if not self.fallback:
            return [first]
        return [first] + [m for m in self.models if m != first]

    def generate(self, request, api_key=None):
        """Answer `request`; with a client's own `api_key`, only with that key and the model it named."""
        pool = KeyPool([api_key], clock=self.pool.clock) if api_key else self.pool
        if not len(pool):
            raise NoApiKey("No Gemini API key is configured: set GEMINI_API_KEY.")
        deadline = self.clock() + self.deadline
        attempts, failures = [], {}
        chain = [request.model] if api_key else self.chain_for(request.model)
        for model in chain:
            try:
                completion = self._generate_with(model, request, deadline, attempts, pool)
            except _ModelUnavailable as exc:
                failures[model] = exc.failure
                log.warning("model %s unavailable (%s): %s", model, exc.failure.kind, exc.failure.message)
                continue
            except _DeadlinePassed:
                raise DeadlineExceeded(
                    f"No answer from Gemini within the {self.deadline:g} s request deadline.", attempts=attempts
                ) from None
            except UpstreamFailure as failure:
                if failure.kind == UNTRUSTED:
                    log.error("%s", failure.message)
                    raise UpstreamFailed(f"{failure.message}.", attempts=attempts) from None
                raise UpstreamRejected(f"Gemini rejected the request: {failure.message}", attempts=attempts) from None
            return self._checked(Generation(completion, model, attempts))
        if api_key and any(f.kind == KEY_REJECTED for f in failures.values()):
            raise UpstreamRejected("Gemini rejected the API key that was sent.", attempts=attempts)
        raise self._exhausted(chain, failures, attempts, pool)

    def _generate_with(self, model, request, deadline, attempts, pool):
        """Try one model until it answers, proves unavailable, or the deadline passes."""
        delays = backoff(self.policy, self.rng)
        transient_failures = 0
        last_failure = None
        while True:
            keys = pool.candidates(model)
            if not keys:
                # Name what put the last key to rest, when this request saw it happen.
                raise _ModelUnavailable(last_failure or UpstreamFailure(QUOTA, f"every key is cooling down for {model}"))
            key = keys[0]
            remaining = deadline - self.clock()
            if remaining <= 0:
                raise _DeadlinePassed()
            started, started_at = self.clock(), datetime.now(timezone.utc).replace(tzinfo=None)
            try:
                completion = self.sdk.generate(key, model, request, min(self.upstream_timeout, remaining))
            except UpstreamFailure as failure:
                last_failure = failure
                attempts.append(self._attempt(attempts, model, key, started, started_at, failure))
                log.info("attempt %d on %s with %s failed: %s %s", len(attempts), model,
                         pool.key_id(key), failure.kind, failure.status or "")
                self._react(failure, key, model, pool)
                if not is_retryable(failure):
                    continue  # another key for the same model, if one is left
                transient_failures += 1
                if transient_failures >= self.policy.max_attempts:
                    raise _ModelUnavailable(failure) from None
                wait = delay_for(failure, next(delays), self.policy)
                if self.clock() + wait >= deadline:
                    raise _DeadlinePassed() from None
                self.sleep(wait)
                continue
            attempts.append(self._attempt(attempts, model, key, started, started_at))
            return completion

    def _react(self, failure, key, model, pool):
        """Rest what failed, or stop trying this model or request altogether."""
        if failure.kind == QUOTA:
            pool.rest_for_quota(key, model, failure, self.quota_cooldown)
        elif failure.kind == KEY_REJECTED:
            for each in self.models + [model]:
                pool.rest(key, each, _REJECTED_KEY_REST, "key_rejected")
        elif failure.kind == NOT_FOUND:
            raise _ModelUnavailable(failure)
        elif failure.kind in (REJECTED, UNTRUSTED):
            raise failure

    def _attempt(self, attempts, model, key, started, started_at, failure=None):
        return AttemptRecord(
            number=len(attempts) + 1,
            model=model,
            key_id=self.pool.key_id(key),  # a fingerprint: the same function for any key
            outcome=failure.kind if failure else "ok",
            latency_ms=(self.clock() - started) * 1000,
            started_at=started_at,
            status_code=failure.status if failure else 200,
            error_code=failure.reason if failure else None,
            error_message=failure.message[:500] if failure else None,
        )

    def _exhausted(self, chain, failures, attempts, pool):
        tried = "; ".join(f"{model}: {failure.message}" for model, failure in failures.items())
        if failures and all(f.kind == NOT_FOUND for f in failures.values()):
            return UpstreamModelNotFound(f"Gemini does not know the model ({tried}).", attempts=attempts)
        if failures and all(f.kind in (QUOTA, KEY_REJECTED) for f in failures.values()) and any(
            f.kind == QUOTA for f in failures.values()
        ):
            retry_after = min(pool.seconds_until_available(model) for model in chain)
            return QuotaExhausted(
                f"Every model and key is out of quota ({tried}).", retry_after=retry_after, attempts=attempts
            )
        return UpstreamFailed(f"Gemini failed after retries and fallback ({tried}).", attempts=attempts)

    @staticmethod
    def _checked(generation):
        """Turn an answer that carries no text because it was blocked into its own error."""
        completion = generation.completion
        if completion.block_reason:
            raise PromptBlocked(
                f"Gemini blocked the prompt ({completion.block_reason}).",
                details={"block_reason": completion.block_reason}, attempts=generation.attempts,
            )
        if completion.text is None and completion.finish_reason in BLOCKING_FINISH_REASONS:
            raise ResponseBlocked(
                f"Gemini withheld the answer ({completion.finish_reason}).",
                details={"finish_reason": completion.finish_reason}, attempts=generation.attempts,
            )
        return generation
