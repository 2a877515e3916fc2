"""Retry policy: which failures are worth another try, and how long to wait before it."""
import random
from dataclasses import dataclass

from .failures import TIMEOUT, TRANSIENT


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 3  # per model
    initial_delay: float = 0.5  # seconds
    max_delay: float = 8.0  # seconds
    multiplier: float = 2.0
    honor_delay_max: float = 10.0  # seconds: a longer RetryInfo delay means "try elsewhere"

    @classmethod
    def from_config(cls, config):
        return cls(
            max_attempts=config["RETRY_MAX_ATTEMPTS"],
            initial_delay=config["RETRY_INITIAL_DELAY_SECONDS"],
            max_delay=config["RETRY_MAX_DELAY_SECONDS"],
            multiplier=config["RETRY_MULTIPLIER"],
            honor_delay_max=config["RETRY_HONOR_DELAY_MAX_SECONDS"],
        )


def is_retryable(failure):
    """Transient failures are retried on the same model; the rest move on at once."""
    return failure.kind in (TRANSIENT, TIMEOUT)


def backoff(policy, rng=random.random):
    """Yield jittered exponential delays: each in [delay/2, delay], delay growing to max_delay."""
    delay = policy.initial_delay
    while True:
        yield delay * (0.5 + rng() / 2)
        delay = min(delay * policy.multiplier, policy.max_delay)


def delay_for(failure, planned, policy):
    """Wait what Gemini asked for when it asked for a short wait; otherwise the planned backoff."""
    if failure.retry_delay is not None and failure.retry_delay <= policy.honor_delay_max:
        return max(planned, failure.retry_delay)
    return planned
