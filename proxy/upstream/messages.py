"""What the service asks of Gemini and what it gets back, free of any SDK type."""
from dataclasses import dataclass, field
from typing import Optional

from ..wire.usage import Usage


@dataclass(frozen=True)
class GenerationRequest:
    prompt: str
    model: Optional[str] = None  # None: the first model of the chain
    temperature: Optional[float] = None
    max_output_tokens: Optional[int] = None
    top_p: Optional[float] = None
    top_k: Optional[int] = None
    stop_sequences: tuple = ()
    system_instruction: Optional[str] = None

    def generation_config(self):
        """The generation settings that were given, in the SDK's snake_case names."""
        settings = {
            "temperature": self.temperature,
            "max_output_tokens": self.max_output_tokens,
            "top_p": self.top_p,
            "top_k": self.top_k,
            "stop_sequences": list(self.stop_sequences) or None,
        }
        return {name: value for name, value in settings.items() if value is not None}

    def native_body(self):
        """The same request as Gemini's own generateContent body, so both APIs share cache entries."""
        names = {"temperature": "temperature", "max_output_tokens": "maxOutputTokens", "top_p": "topP",
                 "top_k": "topK", "stop_sequences": "stopSequences"}
        body = {"contents": [{"role": "user", "parts": [{"text": self.prompt}]}]}
        config = {names[k]: v for k, v in self.generation_config().items()}
        if config:
            body["generationConfig"] = config
        if self.system_instruction:
            body["systemInstruction"] = {"parts": [{"text": self.system_instruction}]}
        return body


@dataclass
class Completion:
    text: Optional[str]
    finish_reason: Optional[str] = None
    block_reason: Optional[str] = None  # set when Gemini blocked the prompt itself
    prompt_tokens: Optional[int] = None
    completion_tokens: Optional[int] = None
    total_tokens: Optional[int] = None
    token_source: str = "usage_metadata"  # usage_metadata | count_tokens | estimate
    cached_tokens: Optional[int] = None  # part of prompt_tokens
    thoughts_tokens: Optional[int] = None  # billed as output, beside completion_tokens
    tool_use_prompt_tokens: Optional[int] = None
    service_tier: Optional[str] = None

    @staticmethod
    def tokens(usage):
        """The fields of a Completion that a Usage (wire.usage) fills: Completion(text=..., **tokens(usage))."""
        return {"prompt_tokens": usage.prompt, "completion_tokens": usage.candidates, "total_tokens": usage.total,
                "cached_tokens": usage.cached, "thoughts_tokens": usage.thoughts,
                "tool_use_prompt_tokens": usage.tool_use_prompt, "service_tier": usage.service_tier}

    @property
    def usage(self):
        return Usage(self.prompt_tokens, self.completion_tokens, self.total_tokens, self.cached_tokens,
                     self.thoughts_tokens, self.tool_use_prompt_tokens, self.service_tier)


@dataclass
class AttemptRecord:
    number: int
    model: str
    key_id: Optional[str]
    # ok | quota | transient | timeout | untrusted | key_rejected | not_found | rejected | blocked
    outcome: str
    latency_ms: float
    started_at: object = None  # datetime, UTC
    status_code: Optional[int] = None
    error_code: Optional[str] = None
    error_message: Optional[str] = None


@dataclass
class Generation:
    completion: Completion
    model: str
    attempts: list = field(default_factory=list)

    @property
    def upstream_latency_ms(self):
        return sum(attempt.latency_ms for attempt in self.attempts)
