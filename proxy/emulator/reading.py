"""Reading a Gemini request body as Gemini does: the fields it takes in either spelling, and its 400s."""
from . import replies


class BadRequest(Exception):
    """The body is one Gemini answers with 400 INVALID_ARGUMENT; the message is Gemini's."""


class Refused(Exception):
    """The request names what the caller's project cannot reach; Gemini answers with `status`."""

    def __init__(self, status, message):
        super().__init__(message)
        self.status = status


def field(mapping, camel, snake):
    if not isinstance(mapping, dict):
        return None
    return mapping.get(camel, mapping.get(snake))


def texts(content):
    if not isinstance(content, dict):
        raise BadRequest("Invalid value at 'contents': each content must be an object.")
    parts = content.get("parts") or []
    if not isinstance(parts, list):
        raise BadRequest("Invalid value at 'contents.parts'.")
    return [part["text"] for part in parts if isinstance(part, dict) and isinstance(part.get("text"), str)]


def read_generation(body):
    contents = body.get("contents")
    if isinstance(contents, dict):
        contents = [contents]
    if not isinstance(contents, list) or not contents:
        raise BadRequest("* GenerateContentRequest.contents: contents is not specified")
    config = field(body, "generationConfig", "generation_config") or {}
    if not isinstance(config, dict):
        raise BadRequest("Invalid value at 'generation_config'.")
    for setting in field(body, "safetySettings", "safety_settings") or []:
        for name in ("category", "threshold"):
            if not isinstance(setting.get(name), (str, int)):
                raise BadRequest(f"Invalid value at 'safety_settings.{name}'.")
    system = field(body, "systemInstruction", "system_instruction")
    all_texts = [text for content in contents for text in texts(content)]
    if system:
        all_texts += texts(system)
    prompt = " ".join(texts(contents[-1]))
    max_tokens = field(config, "maxOutputTokens", "max_output_tokens")
    temperature = config.get("temperature")
    if temperature is not None and not (isinstance(temperature, (int, float)) and 0 <= temperature <= 2):
        raise BadRequest("Invalid value at 'generation_config.temperature'.")
    return prompt, replies.count_tokens(" ".join(all_texts)), max_tokens
