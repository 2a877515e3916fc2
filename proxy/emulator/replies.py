"""Gemini's response and error bodies, as Google shapes them."""
import hashlib
import math

MODELS = {
    "gemini-2.5-pro": {"displayName": "Gemini 2.5 Pro", "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-2.5-flash": {"displayName": "Gemini 2.5 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-2.5-flash-lite": {"displayName": "Gemini 2.5 Flash-Lite", "inputTokenLimit": 1048576,
                              "outputTokenLimit": 65536},
    "gemini-2.5-flash-preview-09-2025": {"displayName": "Gemini 2.5 Flash Preview Sep 2025",
                                        "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-2.5-flash-lite-preview-09-2025": {"displayName": "Gemini 2.5 Flash-Lite Preview Sep 2025",
                                             "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-2.0-flash": {"displayName": "Gemini 2.0 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 8192},
    # Gemini 3: thinking on by default, thought signatures on function calls (thinking.py). The Gemini CLI's
    # defaults (packages/core/src/config/models.ts) are among them: gemini-3-pro-preview, gemini-3.1-pro-preview
    # (and -customtools), gemini-3-flash-preview, gemini-3.5-flash (alias gemini-3-flash), gemini-3.1-flash-lite.
    "gemini-3-pro-preview": {"displayName": "Gemini 3 Pro Preview", "inputTokenLimit": 1048576,
                             "outputTokenLimit": 65536},
    "gemini-3.1-pro-preview": {"displayName": "Gemini 3.1 Pro Preview", "inputTokenLimit": 1048576,
                               "outputTokenLimit": 65536},
    "gemini-3.1-pro-preview-customtools": {"displayName": "Gemini 3.1 Pro Preview (custom tools)",
                                           "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-3-flash-preview": {"displayName": "Gemini 3 Flash Preview", "inputTokenLimit": 1048576,
                               "outputTokenLimit": 65536},
    "gemini-3-flash": {"displayName": "Gemini 3 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-3.5-flash": {"displayName": "Gemini 3.5 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-3.5-flash-lite": {"displayName": "Gemini 3.5 Flash-Lite", "inputTokenLimit": 1048576,
                              "outputTokenLimit": 65536},
    "gemini-3.8-flash": {"displayName": "Gemini 3.8 Flash", "inputTokenLimit": 1048576, "outputTokenLimit": 65536},
    "gemini-3.1-flash-lite": {"displayName": "Gemini 3.1 Flash-Lite", "inputTokenLimit": 1048576,
                              "outputTokenLimit": 65536},
    "gemini-3.1-flash-lite-preview": {"displayName": "Gemini 3.1 Flash-Lite Preview", "inputTokenLimit": 1048576,
                                      "outputTokenLimit": 65536},
    "text-embedding-004": {"displayName": "Text Embedding 004", "inputTokenLimit": 2048, "outputTokenLimit": 1,
                           "methods": ["embedContent"]},
    "gemini-embedding-001": {"displayName": "Gemini Embedding 001", "inputTokenLimit": 2048, "outputTokenLimit": 1,
                             "methods": ["embedContent", "countTokens"]},
}
# The Live API's models (live_session.py serves them); models.list shows them with their one method.
LIVE_MODELS = ("gemini-3.1-flash-live-preview", "gemini-2.5-flash-native-audio-preview-12-2025",
               "gemini-2.5-flash-native-audio-preview-09-2025", "gemini-2.5-flash-native-audio-latest",
               "gemini-live-2.5-flash-preview", "gemini-2.0-flash-live-001")
MODELS.update({name: {"displayName": name.replace("-", " ").title(),
                      "inputTokenLimit": 131072, "outputTokenLimit": 8192, "methods": ["bidiGenerateContent"]}
               for name in LIVE_MODELS})
GENERATION_METHODS = ["generateContent", "countTokens", "createCachedContent", "batchGenerateContent"]

# Enum numbers as Google's protos define them, for clients that ask for enum-encoding=int.
# The last: a reason Gemini may add after the SDK was released, which the SDK's enum does not name.
FINISH_REASONS = {"STOP": 1, "MAX_TOKENS": 2, "SAFETY": 3, "RECITATION": 4, "OTHER": 5, "NEWER_THAN_THE_SDK": 99}
BLOCK_REASONS = {"SAFETY": 1, "OTHER": 2}
STATUS_NAMES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 429: "RESOURCE_EXHAUSTED",
                500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
EMBEDDING_SIZE = 768


def count_tokens(text):
    return max(1, math.ceil(len(text) / 4)) if text else 0


def live_only(name):
    """A Live API model: it serves bidiGenerateContent and nothing over REST."""
    return MODELS.get(name, {}).get("methods") == ["bidiGenerateContent"]


def model_resource(name):
    info = MODELS[name]
    return {
        "name": f"models/{name}",
        "version": "001",
        "displayName": info["displayName"],
        "description": f"{info['displayName']} (emulated)",
        "inputTokenLimit": info["inputTokenLimit"],
        "outputTokenLimit": info["outputTokenLimit"],
        "supportedGenerationMethods": info.get("methods", GENERATION_METHODS),
        "temperature": 1.0, "topP": 0.95, "topK": 64, "maxTemperature": 2.0,
    }


def answer_text(model, prompt, max_tokens, system=""):
    """A deterministic answer, words counted as tokens so maxOutputTokens cuts it visibly; a system
    instruction is acknowledged in it."""
    heeded = f"(Following the system instruction: {system.strip()[:200]}) " if system.strip() else ""
    words = (f"Emulated {model} answer to: {prompt.strip()[:400]} {heeded}"
             "This reply is produced locally by the Gemini emulator and never leaves this machine.").split()
    if max_tokens is not None and len(words) > max_tokens:
        return " ".join(words[:max_tokens]), "MAX_TOKENS"
    return " ".join(words), "STOP"


def usage(prompt_tokens, completion_tokens):
    return {
        "promptTokenCount": prompt_tokens,
        "candidatesTokenCount": completion_tokens,
        "totalTokenCount": prompt_tokens + completion_tokens,
        "promptTokensDetails": [{"modality": "TEXT", "tokenCount": prompt_tokens}],
    }


def enum(value, table, as_int):
    return table.get(value, 0) if as_int else value


def response_id(seed):
    return hashlib.sha256(seed.encode()).hexdigest()[:22]


def error_body(status, message, details=None):
    body = {"error": {"code": status, "message": message, "status": STATUS_NAMES.get(status, "UNKNOWN")}}
    if details:
        body["error"]["details"] = details
    return body


def quota_error(model, retry_delay="20s", per_day=False):
    quota_id = ("GenerateRequestsPerDayPerProjectPerModel-FreeTier" if per_day
                else "GenerateRequestsPerMinutePerProjectPerModel-FreeTier")
    metric = "generate_content_free_tier_requests"
    details = [
        {"@type": "type.googleapis.com/google.rpc.QuotaFailure", "violations": [{
            "quotaMetric": f"generativelanguage.googleapis.com/{metric}",
            "quotaId": quota_id,
            "quotaDimensions": {"location": "global", "model": model},
            "quotaValue": "250" if per_day else "10",
        }]},
        {"@type": "type.googleapis.com/google.rpc.Help", "links": [{
            "description": "Learn more about Gemini API quotas",
            "url": "https://ai.google.dev/gemini-api/docs/rate-limits"}]},
    ]
    if retry_delay:
        details.append({"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay})
    return error_body(429, "You exceeded your current quota, please check your plan and billing details.", details)


def invalid_key_error():
    return error_body(400, "API key not valid. Please pass a valid API key.", [{
        "@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
        "domain": "googleapis.com", "metadata": {"service": "generativelanguage.googleapis.com"}}])


def key_refusal(key, valid_keys):
    """(status, error body) for a call with no key, or with one the emulator does not take; None to serve
    it (an empty `valid_keys` takes any key)."""
    if not key:
        return 403, missing_key_error()
    if valid_keys and key not in valid_keys:
        return 400, invalid_key_error()
    return None


def missing_key_error():
    return error_body(403, "Method doesn't allow unregistered callers (callers without established identity). "
                           "Please use API Key or other form of API consumer identity to call this API.")


def fault_error(status, model, retry_delay=None):
    messages = {
        503: "The model is overloaded. Please try again later.",
        500: "An internal error has occurred. Please retry or report in https://developers.generativeai.google/guide/troubleshooting",
        504: "The request timed out. Please try again.",
        400: "Request contains an invalid argument.",
        403: "The caller does not have permission",
        404: f"models/{model} is not found for API version v1beta, or is not supported for generateContent.",
    }
    details = [{"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": retry_delay}] if retry_delay else None
    return error_body(status, messages.get(status, "Emulated failure."), details)
