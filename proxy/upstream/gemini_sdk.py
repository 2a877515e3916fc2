"""The only module that calls google-generativeai (sdk_seams adjusts its transport): one REST client per key, no SDK
retries."""
import threading
import warnings
from collections import OrderedDict

with warnings.catch_warnings():
    # The SDK announces its own deprecation on import; the operator cannot act on it, we can (see README).
    warnings.simplefilter("ignore", FutureWarning)
    from google.generativeai import protos
import requests
from google.ai import generativelanguage as glm
from google.api_core import exceptions as api_exceptions
from google.api_core.gapic_v1.client_info import ClientInfo
from google.protobuf import json_format

from ..wire.usage import Usage
from . import sdk_seams
from .failures import (
    REJECTED, TIMEOUT, TRANSIENT, UNTRUSTED, UpstreamFailure, from_google_error, untrusted_message,
)
from .messages import Completion
from .session import UntrustedCertificate, UpstreamHttp, upstream_pool
from .transport import failure_row

# Many greenlets share one client per key; a pool smaller than the requests in flight churns connections.
_POOL_SIZE = 1000  # as many as a worker holds requests in flight (WORKER_CONNECTIONS)
# Clients kept for keys callers bring themselves (/gemini-proxy's api_key); the least recently used go.
_MAX_CLIENTS = 128
_FINISH_REASON = protos.Candidate.FinishReason
_BLOCK_REASON = protos.GenerateContentResponse.PromptFeedback.BlockReason
# Finish reasons that mean the answer was withheld rather than merely cut short.
BLOCKING_FINISH_REASONS = {
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY", "LANGUAGE", "OTHER",
}


sdk_seams.install()  # the calls GeminiSdk makes (this module is the SDK's only user), each step cheaper


def estimate_tokens(text):
    """Gemini averages about four characters a token; used only when it reports no usage."""
    return max(1, (len(text) + 3) // 4) if text else 0


class GeminiSdk:
    """Calls Gemini through the legacy SDK's REST transport, pointed at the configured base URL."""

    def __init__(self, base_url, user_agent="gemini-proxy", http=None):
        self.base_url = base_url
        self.user_agent = user_agent
        # One pool for every key's client (and, given by the app, the pass-through's too): over HTTP/2 a
        # worker's calls share a few connections instead of each key holding its own.
        self.http = http if http is not None else upstream_pool(base_url, _POOL_SIZE)
        self._clients = OrderedDict()
        self._lock = threading.Lock()

    def client_for(self, key):
        with self._lock:
            client = self._clients.get(key)
            if client is not None:
                self._clients.move_to_end(key)
                return client
        client = self._build(key)
        with self._lock:
            client = self._clients.setdefault(key, client)
            while len(self._clients) > _MAX_CLIENTS:
                self._clients.popitem(last=False)
        return client

    def _build(self, key):
        client = glm.GenerativeServiceClient(
            transport="rest",
            client_options={"api_endpoint": self.base_url, "api_key": key},
            client_info=ClientInfo(user_agent=self.user_agent),
        )
        session = getattr(client._transport, "_session", None)
        if session is not None:
            session.request = UpstreamHttp(session.credentials, self.http).request
        return client

    def generate(self, key, model, request, timeout):
        """One generateContent call; raises UpstreamFailure on anything but an answer."""
        response = self._call(self.client_for(key).generate_content, request=_generate_request(model, request),
                              retry=None, timeout=sdk_seams.AttemptTimeout(timeout))
        completion = _completion(type(response).pb(response))
        if completion.prompt_tokens is None:
            self._count_missing_tokens(key, model, request.prompt, completion, timeout)
        return completion

    def _count_missing_tokens(self, key, model, prompt, completion, timeout):
        """Fill token counts Gemini did not report: countTokens first, an estimate if that fails."""
        client = self.client_for(key)
        try:
            counts = []
            for text in (prompt, completion.text or ""):
                request = protos.CountTokensRequest(
                    model=f"models/{model}", contents=[{"role": "user", "parts": [{"text": text}]}]
                )
                counts.append(self._call(client.count_tokens, request, retry=None,
                                         timeout=sdk_seams.AttemptTimeout(timeout)).total_tokens)
            completion.prompt_tokens, completion.completion_tokens = counts
            completion.token_source = "count_tokens"
        except UpstreamFailure:
            completion.prompt_tokens = estimate_tokens(prompt)
            completion.completion_tokens = estimate_tokens(completion.text or "")
            completion.token_source = "estimate"
        completion.total_tokens = completion.prompt_tokens + completion.completion_tokens

    @staticmethod
    def _call(function, *args, **kwargs):
        try:
            return function(*args, **kwargs)
        except api_exceptions.GoogleAPICallError as exc:
            raise from_google_error(exc.code, exc.details, _google_message(exc)) from None
        except UnicodeError as exc:
            # Raised building the request (a lone surrogate, say): the input, not Gemini, is at fault.
            raise UpstreamFailure(REJECTED, f"the request cannot be encoded: {type(exc).__name__}") from None
        except (requests.exceptions.InvalidHeader, requests.exceptions.InvalidURL) as exc:
            raise UpstreamFailure(REJECTED, f"the request cannot be sent: {type(exc).__name__}") from None
        except requests.exceptions.Timeout:
            raise UpstreamFailure(TIMEOUT, "Gemini did not answer in time") from None
        except UntrustedCertificate as exc:
            raise UpstreamFailure(UNTRUSTED, untrusted_message(exc)) from None
        except requests.exceptions.RequestException as exc:
            raise UpstreamFailure(TRANSIENT, f"Gemini unreachable: {type(exc).__name__}") from None
        except json_format.ParseError as exc:
            raise UpstreamFailure(TRANSIENT, f"Gemini sent a malformed response: {type(exc).__name__}") from None
        except ValueError as exc:
            # The SDK could not build the request from what was asked (a value out of range, say).
            raise UpstreamFailure(REJECTED, f"the request cannot be sent: {exc}") from None


def _google_message(exc):
    """Google's own message, without the request URL the SDK prefixes to it."""
    try:
        return str(exc.response.json()["error"]["message"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return str(exc.message)


def _generate_request(model, request):
    """The SDK's GenerateContentRequest, built as the raw message its transport serializes.

    GenerativeModel would build the same message through proto-plus conversions that cost more CPU than
    the rest of the request; the prompt, settings and system instruction need none of them."""
    fields = {"model": f"models/{model}", "contents": [{"role": "user", "parts": [{"text": request.prompt}]}]}
    settings = request.generation_config()
    if settings:
        fields["generation_config"] = settings
    if request.system_instruction:
        fields["system_instruction"] = {"parts": [{"text": request.system_instruction}]}
    try:
        return protos.GenerateContentRequest.wrap(protos.GenerateContentRequest.pb()(**fields))
    except UnicodeError as exc:  # a lone surrogate, say: the input, not Gemini, is at fault
        raise UpstreamFailure(REJECTED, f"the request cannot be encoded: {type(exc).__name__}") from None
    except (TypeError, ValueError) as exc:  # a value out of the field's range
        raise UpstreamFailure(REJECTED, f"the request cannot be sent: {exc}") from None


def _enum_name(enum, value):
    try:
        name = enum(value).name
    except ValueError:  # a reason newer than this SDK: unnamed, as proto-plus left it
        return None
    return None if name in ("FINISH_REASON_UNSPECIFIED", "BLOCK_REASON_UNSPECIFIED") else name


def _completion(result):
    """Text, finish reason and usage, read off the raw GenerateContentResponse message."""
    usage = result.usage_metadata if result.HasField("usage_metadata") else None
    tokens = {}
    if usage is not None and (usage.total_token_count or usage.prompt_token_count):
        read = Usage.from_sdk(usage)
        tokens = Completion.tokens(read)
        tokens["total_tokens"] = read.total or (read.prompt or 0) + read.output
    if not result.candidates:
        block = _enum_name(_BLOCK_REASON, result.prompt_feedback.block_reason) or "OTHER"
        return Completion(text=None, block_reason=block, **tokens)
    candidate = result.candidates[0]
    texts = [part.text for part in candidate.content.parts if part.text and not getattr(part, "thought", False)]
    return Completion(
        text="".join(texts) if texts else None,
        finish_reason=_enum_name(_FINISH_REASON, candidate.finish_reason),
        **tokens,
    )


class SdkTransport:
    """The engine's transport for /gemini/generate and /gemini-proxy: a GenerationRequest through the SDK."""

    def __init__(self, sdk, timeout):
        self.sdk = sdk
        self.timeout = timeout  # seconds for one attempt, cut to what is left of the deadline

    def send(self, request, attempt):
        return self.sdk.generate(attempt.key, attempt.model, request, min(self.timeout, attempt.seconds))

    @staticmethod
    def recorded(result):
        return failure_row(result) if isinstance(result, UpstreamFailure) else {"outcome": "ok", "status_code": 200}
