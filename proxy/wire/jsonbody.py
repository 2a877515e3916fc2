"""JSON bodies parsed with the bounds a gateway needs: a nesting depth, and no NaN or Infinity.

Python's json accepts NaN and Infinity, which are not JSON and which Gemini cannot take, and it
recurses once per level, so a body nested a hundred thousand deep is a RecursionError, not an answer."""
import json

MAX_DEPTH = 64  # Gemini's own requests nest about ten deep (contents, parts, function call arguments)


class BadJson(ValueError):
    """The body is not JSON this API takes; the message says why."""


def _refuse_constant(name):
    raise BadJson(f"The body holds {name}, which is not a JSON number.")


def loads(data, max_depth=MAX_DEPTH):
    """The JSON value of `data` (bytes or text); BadJson if it is not JSON, nests too deep, or holds NaN."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant)
    except RecursionError:
        raise BadJson(f"The body nests deeper than {max_depth} levels.") from None
    except (ValueError, TypeError) as exc:
        if isinstance(exc, BadJson):
            raise
        raise BadJson("The body is not valid JSON.") from None
    if depth_exceeds(value, max_depth):
        raise BadJson(f"The body nests deeper than {max_depth} levels.")
    return value


def depth_exceeds(value, max_depth):
    """Whether `value` nests deeper than `max_depth`, without recursing."""
    pending = [(value, 1)]
    while pending:
        item, depth = pending.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list):
            children = item
        else:
            continue
        if depth > max_depth:
            return True
        pending.extend((child, depth + 1) for child in children if isinstance(child, (dict, list)))
    return False
