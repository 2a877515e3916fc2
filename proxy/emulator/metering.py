"""usageMetadata as Google counts it (thoughts and a built-in tool's prompt are in the total), and the
service tier a request asks for, named back in usage and in a header."""
from . import replies, tools
from .reading import BadRequest, field

_TIERS = ("flex", "standard", "priority", "unspecified")


def usage_metadata(body, prompt_tokens, produced, thoughts):
    usage = replies.usage(prompt_tokens, produced)
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
        usage["totalTokenCount"] += thoughts
    if tools.built_in_tools(body):
        usage["toolUsePromptTokenCount"] = tools.TOOL_USE_PROMPT_TOKENS
        usage["totalTokenCount"] += tools.TOOL_USE_PROMPT_TOKENS
    tier = service_tier(body)
    if tier:
        usage["serviceTier"] = tier
    return usage


def service_tier(body):
    """The tier a request asks for (flex, standard, priority; SERVICE_TIER_FLEX alike), None if unsaid."""
    tier = field(body, "serviceTier", "service_tier")
    if tier is None:
        tier = field(field(body, "generationConfig", "generation_config"), "serviceTier", "service_tier")
    if not isinstance(tier, str) or not tier:
        return None
    tier = tier.lower().removeprefix("service_tier_")
    if tier not in _TIERS:
        raise BadRequest(f"Invalid value at 'service_tier' ({tier[:40]}).")
    return "standard" if tier == "unspecified" else tier


def tier_headers(body):
    """Google names the tier that served a call in a header too (the SDKs read it to see a downgrade)."""
    tier = service_tier(body)
    return {"x-gemini-service-tier": tier} if tier else {}
