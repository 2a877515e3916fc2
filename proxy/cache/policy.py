"""What a cache entry is keyed by, and whether a request may read or write the cache."""
import hashlib
import json
import re
from dataclasses import dataclass

# Everything in a generateContent body that can change the answer. Keys are canonicalised to
# camelCase, since Gemini accepts both spellings; the API key is never part of it.
_ANSWER_FIELDS = ("contents", "systemInstruction", "generationConfig", "safetySettings", "tools", "toolConfig",
                  "cachedContent")
_SNAKE = re.compile(r"_([a-z])")


def _camel(value):
    if isinstance(value, dict):
        return {_SNAKE.sub(lambda m: m.group(1).upper(), k): _camel(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_camel(v) for v in value]
    return value


def canonical_request(model, body):
    body = _camel(body if isinstance(body, dict) else {})
    relevant = {name: body[name] for name in _ANSWER_FIELDS if body.get(name) not in (None, [], {})}
    if isinstance(relevant.get("contents"), dict):
        relevant["contents"] = [relevant["contents"]]
    for content in relevant.get("contents") or []:
        if isinstance(content, dict):
            content.setdefault("role", "user")  # Gemini's default role, spelled out or not
    return {"model": model, **relevant}


def cache_key(model, body):
    canonical = json.dumps(canonical_request(model, body), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8", errors="surrogatepass")).hexdigest()


def deterministic(body):
    config = _camel(body or {}).get("generationConfig") or {}
    return config.get("temperature") == 0 or config.get("seed") is not None


@dataclass(frozen=True)
class Decision:
    read: bool
    write: bool

    @property
    def used(self):
        return self.read or self.write


OFF = Decision(False, False)


def decide(config, headers, body):
    """Whether this request may be answered from, and may add to, the cache."""
    if not config["CACHE_ENABLED"]:
        return OFF
    directives = {d.strip().lower() for d in headers.get("Cache-Control", "").split(",")}
    opt = headers.get("X-Proxy-Cache", "").strip().lower()
    if opt == "off":
        return OFF
    if not (opt == "on" or config["CACHE_MODE"] == "all" or deterministic(body)):
        return OFF
    return Decision(read="no-cache" not in directives, write="no-store" not in directives)
