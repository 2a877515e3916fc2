"""The seam between the resilience engine and a way of reaching Gemini (the SDK, or raw HTTP)."""
from dataclasses import dataclass
from typing import Optional, Protocol


@dataclass  # not frozen: a frozen dataclass's __init__ costs a call per field, on every attempt
class Try:
    """One attempt, as the engine hands it to a transport."""

    model: Optional[str]  # None: a call that names no model (files, operations)
    key: Optional[str]  # None: the caller's own key, carried by the call itself
    key_id: Optional[str]
    seconds: float  # left of the request deadline; no attempt may outlast it


class Transport(Protocol):
    def send(self, job, attempt: Try):
        """The answer to `job` for this attempt; raise UpstreamFailure on anything the engine should judge."""

    def recorded(self, result) -> dict:
        """The attempt row's outcome, status_code, error_code and error_message for an answer or a failure."""


def failure_row(failure):
    """How an UpstreamFailure is recorded when the transport has nothing finer to say."""
    return {"outcome": failure.kind, "status_code": failure.status, "error_code": failure.reason,
            "error_message": failure.message[:500]}
