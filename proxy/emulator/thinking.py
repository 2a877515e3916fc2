"""Thinking, emulated: which models think and how much (thoughtsTokenCount), the thought part includeThoughts
asks for, and thought signatures, opaque and bound to the key's project and the model, checked when the
current turn of a conversation comes back (Gemini 3 refuses a function call that lost its signature)."""
import base64
import hashlib
import hmac

from .reading import BadRequest, field

# Fixed, so a signature made by one emulator process is still good after a restart or from another worker.
_SECRET = b"gemini-emulator thought signatures"
_MAGIC = b"emu1"
# Values Google documents for clients that must send a call it never signed (the Gemini CLI sends the first).
_BYPASSES = {"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"}
_MAX_NATURAL = 8192  # tokens: the most the emulator thinks when left to decide (the CLI's own cap)
_LEVELS = {"minimal": 0.05, "low": 0.5, "medium": 1.0, "high": 2.0}


def gemini3(model):
    return model.startswith("gemini-3")


def can_think(model):
    return model.startswith(("gemini-2.5", "gemini-3"))


def thinks_by_default(model):
    return gemini3(model) or model.startswith("gemini-2.5-pro")


def thought_tokens(model, config, prompt_tokens):
    """How many tokens the model thinks for, from generationConfig.thinkingConfig and the model's default."""
    settings = field(config, "thinkingConfig", "thinking_config") or {}
    if not isinstance(settings, dict):
        raise BadRequest("Invalid value at 'generation_config.thinking_config'.")
    if not can_think(model):
        return 0
    budget = field(settings, "thinkingBudget", "thinking_budget")
    level = field(settings, "thinkingLevel", "thinking_level")
    if budget is not None and level is not None:
        raise BadRequest("You can only set one of thinking budget and thinking level.")
    natural = min(_MAX_NATURAL, 48 + 2 * prompt_tokens)
    if level is not None:
        share = _LEVELS.get(str(level).lower().removeprefix("thinking_level_"))
        if share is None:
            raise BadRequest(f"Invalid value at 'generation_config.thinking_config.thinking_level' ({level}).")
        return max(8, int(natural * share))
    if budget is None:
        return natural if thinks_by_default(model) else 0
    if isinstance(budget, bool) or not isinstance(budget, int):
        raise BadRequest("Invalid value at 'generation_config.thinking_config.thinking_budget'.")
    if budget == 0:
        if model.startswith("gemini-2.5-pro"):
            raise BadRequest("Budget 0 is invalid. This model only works in thinking mode.")
        return 0
    return natural if budget < 0 else min(budget, natural)


def includes_thoughts(config):
    settings = field(config, "thinkingConfig", "thinking_config") or {}
    return bool(field(settings, "includeThoughts", "include_thoughts"))


def thought_part(prompt):
    return {"text": f"**Considering the request**\nThe user asks: {prompt.strip()[:120]}", "thought": True}


def sign(project, model, salt):
    """A signature for a part of `model`'s answer to `project`: base64 of a nonce and an HMAC over both."""
    nonce = hashlib.sha256(salt.encode()).digest()[:12]
    return base64.b64encode(_MAGIC + nonce + _mac(project, model, nonce)).decode()


def _mac(project, model, nonce):
    return hmac.new(_SECRET, f"{project}|{model}|".encode() + nonce, hashlib.sha256).digest()[:20]


def decoded(signature):
    """A signature's bytes, in either base64 alphabet, padded or not, as proto3 JSON reads `bytes` (google-genai
    sends signatures back URL-safe); None when it is not base64."""
    if not isinstance(signature, str):
        return None
    text = signature.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        return base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        return None


def valid(signature, project, model):
    if signature in _BYPASSES:
        return True
    raw = decoded(signature)
    if raw is None:
        return False
    if len(raw) != len(_MAGIC) + 32 or not raw.startswith(_MAGIC):
        return False
    nonce, mac = raw[len(_MAGIC):len(_MAGIC) + 12], raw[len(_MAGIC) + 12:]
    return hmac.compare_digest(mac, _mac(project, model, nonce))


def _is_model(content):
    return isinstance(content, dict) and content.get("role") == "model"


def _turn_start(contents):
    """Where the current turn begins: the latest user content with something other than function responses."""
    for index in range(len(contents) - 1, -1, -1):
        content = contents[index]
        if not isinstance(content, dict) or _is_model(content):
            continue
        parts = content.get("parts") or []
        if any(isinstance(p, dict) and field(p, "functionResponse", "function_response") is None for p in parts):
            return index
    return 0


def check_turn(contents, project, model):
    """Refuse, as Gemini does, the current turn's model steps whose signatures are missing (Gemini 3's first
    function call of each step) or were made for another project or model. Earlier turns are not checked."""
    for index in range(_turn_start(contents) + 1, len(contents)):
        content = contents[index]
        if not _is_model(content):
            continue
        parts = [p for p in content.get("parts") or [] if isinstance(p, dict)]
        for part in parts:
            signature = field(part, "thoughtSignature", "thought_signature")
            if signature is not None and not valid(signature, project, model):
                raise BadRequest("Corrupted thought signature.")
        calls = [p for p in parts if field(p, "functionCall", "function_call") is not None]
        if gemini3(model) and calls and field(calls[0], "thoughtSignature", "thought_signature") is None:
            name = (field(calls[0], "functionCall", "function_call") or {}).get("name", "")
            raise BadRequest(
                "Function call is missing a thought_signature in functionCall parts. This is required for tools "
                "to work correctly, and missing thought_signature may lead to degraded model performance. "
                f"Additional data, function call `default_api:{name}` , position {index + 1}. Please refer to "
                "https://ai.google.dev/gemini-api/docs/thought-signatures for more details.")
