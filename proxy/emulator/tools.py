"""Function calling, emulated: the functions a request declares, whether the model calls one (the last user
text names it, or toolConfig's mode is ANY), the call's arguments made from the declared schema, and the text
answer to a turn of function responses. Built-in tools (Google Search, code execution, URL context) only
count their prompt tokens."""
import json
import re

from .reading import BadRequest, field
from .schema_values import value_for

_BUILT_IN = (("googleSearch", "google_search"), ("googleSearchRetrieval", "google_search_retrieval"),
             ("codeExecution", "code_execution"), ("urlContext", "url_context"))
TOOL_USE_PROMPT_TOKENS = 64  # what the emulator says a built-in tool's results added to the prompt


def declarations(body):
    """name: parameters schema of every function the request declares, in order."""
    declared = {}
    tools = body.get("tools") or []
    if not isinstance(tools, list):
        raise BadRequest("Invalid value at 'tools'.")
    for tool in tools:
        functions = field(tool, "functionDeclarations", "function_declarations") or []
        if not isinstance(functions, list):
            raise BadRequest("Invalid value at 'tools.function_declarations'.")
        for function in functions:
            name = function.get("name") if isinstance(function, dict) else None
            if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.:-]{0,127}", name):
                raise BadRequest("* GenerateContentRequest.tools[0].function_declarations[0].name: Invalid function "
                                 "name. Must start with a letter or an underscore. Must be alphameric (a-z, A-Z, "
                                 "0-9), underscores (_), dots (.), colons (:), or dashes (-), with a maximum length "
                                 "of 128.")
            schema = field(function, "parametersJsonSchema", "parameters_json_schema")
            declared[name] = schema if schema is not None else function.get("parameters") or {}
    return declared


def built_in_tools(body):
    """Whether the request declares one of Google's built-in tools."""
    return any(isinstance(tool, dict) and any(camel in tool or snake in tool for camel, snake in _BUILT_IN)
               for tool in body.get("tools") or [])


def _calling_config(body):
    config = field(field(body, "toolConfig", "tool_config") or {}, "functionCallingConfig",
                   "function_calling_config") or {}
    mode = str(config.get("mode") or "AUTO").upper()
    allowed = field(config, "allowedFunctionNames", "allowed_function_names") or []
    return mode, [name for name in allowed if isinstance(name, str)]


def function_responses(contents):
    """The function responses of the last content, if it is a turn of them."""
    contents = contents if isinstance(contents, list) else [contents]
    last = contents[-1] if contents and isinstance(contents[-1], dict) else {}
    parts = last.get("parts") or []
    return [field(p, "functionResponse", "function_response") for p in parts if isinstance(p, dict)
            and field(p, "functionResponse", "function_response") is not None]


def _asked(contents):
    """The text a tool must be named in: the last text part of the last user turn (the Gemini CLI sends its
    session context first, then the prompt; its system instruction names every tool, so it never counts)."""
    last = contents[-1] if contents and isinstance(contents[-1], dict) else {}
    said = [p["text"] for p in last.get("parts") or []
            if isinstance(p, dict) and isinstance(p.get("text"), str) and not p.get("thought")]
    return said[-1] if said else ""


def chosen_calls(body):
    """The function calls the model answers with ([{"name", "args"}]), or [] to answer in text."""
    declared = declarations(body)
    mode, allowed = _calling_config(body)
    contents = body.get("contents") or []
    contents = contents if isinstance(contents, list) else [contents]
    if not declared or mode == "NONE" or function_responses(contents):
        return []
    prompt = _asked(contents)
    candidates = [name for name in declared if not allowed or name in allowed]
    named = [name for name in candidates if re.search(rf"(?<![\w.:-]){re.escape(name)}(?![\w-])", prompt)]
    if not named and mode in ("ANY", "VALIDATED") and candidates:
        named = candidates[:1]
    # Every function the prompt names is called at once: parallel calls, as Gemini makes them.
    return [{"name": name, "args": value_for(declared[name], name)} for name in named]


def response_text(responses):
    """The answer to a turn of function responses: it quotes what each function returned."""
    said = []
    for response in responses:
        name = response.get("name") if isinstance(response, dict) else None
        result = response.get("response") if isinstance(response, dict) else None
        said.append(f"The function {name} returned {json.dumps(result, sort_keys=True)}.")
    return " ".join(said)
