"""Structured output, emulated: responseMimeType application/json (with responseSchema, Gemini's OpenAPI
subset, or responseJsonSchema, JSON Schema) answers JSON that fits the schema; text/x.enum answers one of
the schema's values."""
import json

from .reading import BadRequest, field
from .schema_values import value_for


def structured_text(config, fallback):
    """The answer's text when generationConfig asks for structured output, else None; `fallback` is the
    prose answer a schema-less JSON answer wraps."""
    mime = str(field(config, "responseMimeType", "response_mime_type") or "").lower()
    schema = field(config, "responseJsonSchema", "response_json_schema")
    if schema is None:
        schema = field(config, "responseSchema", "response_schema")
    if schema is not None and not isinstance(schema, dict):
        raise BadRequest("Invalid value at 'generation_config.response_schema'.")
    if mime == "application/json":
        value = value_for(schema, "value") if schema else {"response": fallback}
        return json.dumps(value)
    if mime == "text/x.enum":
        values = (schema or {}).get("enum")
        if not isinstance(values, list) or not values:
            raise BadRequest("* GenerateContentRequest.generation_config.response_schema: an enum schema is "
                             "required for response_mime_type text/x.enum.")
        return str(values[0])
    if schema is not None and mime in ("", "text/plain"):
        raise BadRequest("* GenerateContentRequest.generation_config.response_mime_type: response_mime_type "
                         "must be one of application/json and text/x.enum when response_schema is set.")
    return None
