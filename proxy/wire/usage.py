"""What an answer says it used: the billed token kinds of Gemini's usageMetadata (or OpenAI's usage), read
once here for every path, so that junk in an answer is None and never an exception."""
import math
from dataclasses import dataclass, fields
from typing import Optional

_COUNT_MAX = 2**31 - 1  # an Integer column's largest value on PostgreSQL; a bigger count is not believed
_TIER_MAX = 20  # characters of a service tier kept (the column's)
_TIER_PREFIX = "SERVICE_TIER_"  # the enum's spelling; kept as its short name: standard, flex, priority

# Gemini's usageMetadata names, per field; promptTokenCount already includes the cached tokens, and
# candidatesTokenCount excludes the thoughts.
_GEMINI = {"prompt": "promptTokenCount", "candidates": "candidatesTokenCount", "total": "totalTokenCount",
           "cached": "cachedContentTokenCount", "thoughts": "thoughtsTokenCount",
           "tool_use_prompt": "toolUsePromptTokenCount"}
_SDK = {"prompt": "prompt_token_count", "candidates": "candidates_token_count", "total": "total_token_count",
        "cached": "cached_content_token_count", "thoughts": "thoughts_token_count",
        "tool_use_prompt": "tool_use_prompt_token_count"}


def count(value):
    """A token count from an answer: a non-negative integer (or its decimal text), else None."""
    if value.__class__ is int:  # what answers hold (not a bool, whose class is bool): no call at all
        return value if 0 <= value <= _COUNT_MAX else None
    if value is None:
        return None
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        text = value.strip()
        if not (text.isascii() and text.isdigit()) or len(text) > 10:  # "12", as protobuf's JSON may write one
            return None
        value = int(text)
    elif isinstance(value, float):
        if not math.isfinite(value) or value != int(value):
            return None
        value = int(value)
    elif not isinstance(value, int):
        return None
    return value if 0 <= value <= _COUNT_MAX else None


def _tier(value):
    """A service tier as its short lower-case name (SERVICE_TIER_FLEX and flex are both `flex`)."""
    if not isinstance(value, str):
        return None
    name = value.strip()
    if name.upper().startswith(_TIER_PREFIX):
        name = name[len(_TIER_PREFIX):]
    return name.lower()[:_TIER_MAX] or None


def _apart(prompt, completion, thoughts, total):
    """Whether an OpenAI-shaped usage counts the reasoning tokens beside completion_tokens, not in them."""
    return None not in (prompt, total) and prompt + completion + thoughts == total != prompt + completion


def _unnamed(values):
    """Tokens a total counts beyond the prompt, candidates and tool-use prompt (None: none, or no total)."""
    if values["total"] is None:
        return None
    rest = values["total"] - sum(values[name] or 0 for name in ("prompt", "candidates", "tool_use_prompt"))
    return rest if rest > 0 else None


def _add(a, b):
    if a is None:
        return b
    if b is None:
        return a
    return min(a + b, _COUNT_MAX)


@dataclass(frozen=True)
class Usage:
    """Tokens of one answer (or of a batch's answers, summed). None: the answer did not say."""

    prompt: Optional[int] = None  # includes `cached`
    candidates: Optional[int] = None  # the answer's own tokens, without `thoughts`
    total: Optional[int] = None
    cached: Optional[int] = None
    thoughts: Optional[int] = None
    tool_use_prompt: Optional[int] = None
    service_tier: Optional[str] = None

    @classmethod
    def from_gemini(cls, metadata):
        """From a usageMetadata object (a GenerateContentResponse's); anything else is an empty Usage."""
        if not isinstance(metadata, dict):
            return cls()
        get = metadata.get
        return cls(count(get("promptTokenCount")), count(get("candidatesTokenCount")), count(get("totalTokenCount")),
                   count(get("cachedContentTokenCount")), count(get("thoughtsTokenCount")),
                   count(get("toolUsePromptTokenCount")), _tier(get("serviceTier")))

    @classmethod
    def from_openai(cls, usage):
        """From an OpenAI-shaped usage object. OpenAI counts the reasoning tokens in completion_tokens; a
        Gemini-made one may not: the total says which (prompt + completion is the total when it does)."""
        if not isinstance(usage, dict):
            return cls()
        prompt_details = usage.get("prompt_tokens_details")
        output_details = usage.get("completion_tokens_details")
        cached = count(prompt_details.get("cached_tokens")) if isinstance(prompt_details, dict) else None
        thoughts = count(output_details.get("reasoning_tokens")) if isinstance(output_details, dict) else None
        prompt, completion, total = (count(usage.get(name)) for name in
                                     ("prompt_tokens", "completion_tokens", "total_tokens"))
        if completion is not None and thoughts and thoughts <= completion and not _apart(prompt, completion,
                                                                                          thoughts, total):
            completion -= thoughts
        return cls(prompt=prompt, candidates=completion, total=total, cached=cached, thoughts=thoughts,
                   service_tier=_tier(usage.get("service_tier")))

    @classmethod
    def from_sdk(cls, metadata):
        """From the SDK's usage message (attributes in snake_case; a field its version lacks is None)."""
        if metadata is None:
            return cls()
        values = {name: count(getattr(metadata, attribute, None)) for name, attribute in _SDK.items()}
        if not hasattr(metadata, _SDK["thoughts"]):
            # A version without the field (google-ai-generativelanguage 0.6) still counts the thoughts in the
            # total: they are what the total holds beyond the kinds it names, and are billed as output.
            values["thoughts"] = _unnamed(values)
        return cls(**values, service_tier=_tier(getattr(metadata, "service_tier", None)))

    def __bool__(self):
        """Whether the answer reported any usage at all."""
        return (self.prompt, self.candidates, self.total, self.cached, self.thoughts, self.tool_use_prompt,
                self.service_tier) != _NOTHING

    @property
    def output(self):
        """Tokens billed at the output price: the answer's and its thoughts'."""
        return (self.candidates or 0) + (self.thoughts or 0)

    def to_gemini(self):
        """As a usageMetadata object, with only the fields known (a cached answer keeps them all)."""
        metadata = {key: getattr(self, name) for name, key in _GEMINI.items() if getattr(self, name) is not None}
        if self.service_tier is not None:
            metadata["serviceTier"] = self.service_tier
        return metadata

    def plus(self, other):
        """The two usages summed (a batch's answers); the tier is kept when both agree."""
        summed = {f.name: _add(getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
                  if f.name != "service_tier"}
        if self.service_tier is None or other.service_tier is None:
            tier = self.service_tier or other.service_tier
        else:
            tier = self.service_tier if self.service_tier == other.service_tier else None  # mixed: unsaid
        return Usage(**summed, service_tier=tier)


_NOTHING = (None,) * len(fields(Usage))  # Usage.__bool__ names every field: a test holds it to fields(Usage)
