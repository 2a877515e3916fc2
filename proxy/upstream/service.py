"""Generation for /gemini/generate and /gemini-proxy: the engine over the SDK, its ending told as our errors."""
import logging

from ..errors import (
    DeadlineExceeded, NoApiKey, PromptBlocked, QuotaExhausted, ResponseBlocked, UpstreamFailed,
    UpstreamModelNotFound, UpstreamRejected,
)
from .chain import ANY
from .engine import DEADLINE, EXHAUSTED, NO_TIME_TO_RETRY, GaveUp, NoKeys, Plan
from .failures import KEY_REJECTED, NOT_FOUND, QUOTA, UNTRUSTED
from .gemini_sdk import BLOCKING_FINISH_REASONS, SdkTransport
from .messages import Generation

log = logging.getLogger(__name__)


class GenerationService:
    def __init__(self, engine, sdk, *, upstream_timeout, fallback=True):
        self.engine = engine
        self.transport = SdkTransport(sdk, upstream_timeout)
        self.scope = (ANY,) if fallback else ()
        self.pool, self.models = engine.pool, engine.chain.models  # for health and analytics

    def generate(self, request, api_key=None):
        """Answer `request`; with a client's own `api_key`, only with that key and the model it named."""
        engine = self.engine
        if api_key:
            plan = Plan([request.model], engine.own_keys(api_key), engine.policy.max_attempts)
        else:
            try:
                keys = engine.server_keys()
            except NoKeys:
                raise NoApiKey("No Gemini API key is configured: set GEMINI_API_KEY.") from None
            plan = Plan(engine.chain.along(request.model, self.scope), keys, engine.policy.max_attempts)
        try:
            completion, model, attempts = engine.run(plan, self.transport, request)
        except GaveUp as ended:
            raise self._error(ended, plan, api_key) from None
        return self._checked(Generation(completion, model, attempts))

    def _error(self, ended, plan, api_key):
        """Our error for the way the call ended."""
        attempts = ended.attempts
        if ended.reason in (DEADLINE, NO_TIME_TO_RETRY):
            return DeadlineExceeded(f"No answer from Gemini within the {self.engine.deadline:g} s request deadline.",
                                    attempts=attempts)
        if ended.reason != EXHAUSTED:
            failure = ended.failure
            if failure.kind == UNTRUSTED:
                log.error("%s", failure.message)
                return UpstreamFailed(f"{failure.message}.", attempts=attempts)
            return UpstreamRejected(f"Gemini rejected the request: {failure.message}", attempts=attempts)
        failures = ended.failures
        if api_key and any(f.kind == KEY_REJECTED for f in failures.values()):
            return UpstreamRejected("Gemini rejected the API key that was sent.", attempts=attempts)
        tried = "; ".join(f"{model}: {failure.message}" for model, failure in failures.items())
        if failures and all(f.kind == NOT_FOUND for f in failures.values()):
            return UpstreamModelNotFound(f"Gemini does not know the model ({tried}).", attempts=attempts)
        kinds = {f.kind for f in failures.values()}
        if QUOTA in kinds and kinds <= {QUOTA, KEY_REJECTED}:
            retry_after = min(plan.keys.seconds_until_available(model) for model in plan.chain)
            return QuotaExhausted(f"Every model and key is out of quota ({tried}).", retry_after=retry_after,
                                  attempts=attempts)
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
