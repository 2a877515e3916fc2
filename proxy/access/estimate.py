"""How many tokens a generation may spend, guessed from its body before it goes upstream."""

BYTES_PER_TOKEN = 4  # Gemini's tokenizer averages about four characters of English a token
_CONFIGS = ("generation_config", "generationConfig")
_OUTPUT_CAPS = ("max_output_tokens", "maxOutputTokens")
_OPENAI_CAPS = ("max_completion_tokens", "max_tokens")
# Input the body refers to rather than carries (an uploaded file, a cached context): its size is
# unknown here, perhaps a million tokens, so such a request holds whatever the quota has left. A
# mention in the text does the same: erring that way costs only concurrency, never the quota.
_UNSEEN_INPUT = (b"fileUri", b"file_uri", b"cachedContent", b"cached_content")
UNBOUNDED = 10 ** 12  # tokens: more than any quota, so the hold is what is left


def _positive_int(value):
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def requested_output(payload):
    """The output cap the request names itself, on any of the three APIs; None when it names none."""
    if not isinstance(payload, dict):
        return None
    for name in _OPENAI_CAPS:
        if _positive_int(payload.get(name)):
            return payload[name]
    for config_name in _CONFIGS:
        config = payload.get(config_name)
        if isinstance(config, dict):
            for name in _OUTPUT_CAPS:
                if _positive_int(config.get(name)):
                    return config[name]
    return None


def refers_to_unseen(body):
    return any(marker in body for marker in _UNSEEN_INPUT)


def estimate_tokens(body, payload, default_output):
    """Input from the body's size, plus the output it allows (the model's largest when it names none).
    The caller caps this by what the quota has left, so a large default never refuses a request."""
    if refers_to_unseen(body):
        return UNBOUNDED
    output = requested_output(payload) or default_output
    return len(body) // BYTES_PER_TOKEN + 1 + output
