"""JSON bodies parsed with the bounds a gateway needs: a nesting depth, and no NaN or Infinity.

Python's json accepts NaN and Infinity, which are not JSON and which Gemini cannot take, and it
recurses once per level, so a body nested a hundred thousand deep is a RecursionError, not an answer."""
import json
import math

MAX_DEPTH = 64  # Gemini's own requests nest about ten deep (contents, parts, function call arguments)
MAX_INT_DIGITS = 100  # far past int64's 19; int() of a longer literal is quadratic work for nothing


class BadJson(ValueError):
    """The body is not JSON this API takes; the message says why."""


def _refuse_constant(name):
    raise BadJson(f"The body holds {name}, which is not a JSON number.")


def _finite_float(text):
    value = float(text)
    if math.isinf(value):  # 1e400 is Infinity by another spelling
        raise BadJson(f"The body holds the number {text[:32]}, which is too large for a double.")
    return value


def _bounded_int(text):
    if len(text) - text.startswith("-") > MAX_INT_DIGITS:
        raise BadJson(f"The body holds an integer of more than {MAX_INT_DIGITS} digits.")
    return int(text)


def _unique_fields(pairs):
    # Parsers disagree on a repeated field (the first wins, or the last): the proxy would check one
    # `cachedContent` while Gemini used the other.
    value = dict(pairs)
    if len(value) != len(pairs):
        seen = set()
        repeated = next(name for name, _ in pairs if name in seen or seen.add(name))
        raise BadJson(f"The body repeats the field \"{repeated[:40]}\".")
    return value


def loads(data, max_depth=MAX_DEPTH):
    """The JSON value of `data` (bytes or text); BadJson if it is not JSON, nests too deep, repeats a
    field, or holds NaN, Infinity (1e400 too) or an integer longer than MAX_INT_DIGITS."""
    try:
        value = json.loads(data, parse_constant=_refuse_constant, parse_float=_finite_float,
                           parse_int=_bounded_int, object_pairs_hook=_unique_fields)
    except RecursionError:
        raise BadJson(f"The body nests deeper than {max_depth} levels.") from None
    except (ValueError, TypeError) as exc:
        if isinstance(exc, BadJson):
            raise
        raise BadJson("The body is not valid JSON.") from None
    # Each level opens a bracket, so a body with no more brackets than max_depth (any request but an
    # outlandish one: strings' brackets count too) cannot nest deeper, and is not walked.
    if _brackets(data) > max_depth and depth_exceeds(value, max_depth):
        raise BadJson(f"The body nests deeper than {max_depth} levels.")
    return value


def _brackets(data):
    if isinstance(data, str):
        return data.count("{") + data.count("[")
    return data.count(b"{") + data.count(b"[")


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
