"""A deterministic value that fits a schema: Gemini's OpenAPI subset (`responseSchema`, a function's
`parameters`, types in upper case) or JSON Schema (`responseJsonSchema`, `parametersJsonSchema`), as JSON mode
and function calling answer with."""
import copy

_MAX_DEPTH = 8  # deeper than this, optional properties are left out so recursive schemas end
_FORMATS = {"date-time": "2026-01-01T00:00:00Z", "date": "2026-01-01", "time": "00:00:00",
            "email": "emulated@example.com", "uri": "https://example.com/emulated", "url": "https://example.com/emulated",
            "uuid": "00000000-0000-4000-8000-000000000000", "ipv4": "192.0.2.1", "ipv6": "2001:db8::1",
            "hostname": "example.com", "duration": "P1D"}


def value_for(schema, name="value"):
    """A value valid against `schema`; `name` (a property's) seeds the strings."""
    return _Builder(schema if isinstance(schema, dict) else {}).build(schema, name, 0, 0)


def normalised_type(schema):
    """A schema's type in lower case, the first that is not null when it lists several; None when unsaid."""
    kind = schema.get("type") if isinstance(schema, dict) else None
    if isinstance(kind, list):
        kinds = [str(k).lower() for k in kind]
        return next((k for k in kinds if k != "null"), "null") if kinds else None
    if isinstance(kind, str) and kind.upper() != "TYPE_UNSPECIFIED":
        return kind.lower()
    return None


class _Builder:
    def __init__(self, root):
        self.root = root

    def resolve(self, schema, depth):
        """`schema` with $ref followed and allOf folded in."""
        seen = 0
        while isinstance(schema, dict) and isinstance(schema.get("$ref"), str) and seen < 32:
            target = self.root
            for step in schema["$ref"].lstrip("#").strip("/").split("/"):
                target = target.get(step.replace("~1", "/").replace("~0", "~"), {}) if isinstance(target, dict) else {}
            schema = {**{k: v for k, v in schema.items() if k != "$ref"}, **(target or {})}
            seen += 1
        if isinstance(schema, dict) and isinstance(schema.get("allOf"), list):
            merged = {k: v for k, v in schema.items() if k != "allOf"}
            for part in schema["allOf"]:
                part = self.resolve(part, depth)
                for field, value in (part or {}).items():
                    if field == "properties":
                        merged["properties"] = {**merged.get("properties", {}), **value}
                    elif field == "required":
                        merged["required"] = list(merged.get("required", [])) + list(value)
                    else:
                        merged.setdefault(field, value)
            schema = merged
        return schema if isinstance(schema, dict) else {}

    def build(self, schema, name, depth, index):
        schema = self.resolve(schema, depth)
        if "const" in schema:
            return copy.deepcopy(schema["const"])
        if isinstance(schema.get("enum"), list) and schema["enum"]:
            return copy.deepcopy(schema["enum"][index % len(schema["enum"])])
        for choice in ("anyOf", "oneOf"):
            options = schema.get(choice)
            if isinstance(options, list) and options:
                rest = {k: v for k, v in schema.items() if k != choice}
                first = self.resolve(options[0], depth)
                return self.build({**rest, **first}, name, depth, index)
        kind = normalised_type(schema) or self._guess(schema)
        if kind == "object":
            return self._object(schema, depth)
        if kind == "array":
            return self._array(schema, name, depth)
        if kind == "integer":
            return self._number(schema, index, integer=True)
        if kind == "number":
            return self._number(schema, index, integer=False)
        if kind == "boolean":
            return index % 2 == 0
        if kind == "null":
            return None
        return self._string(schema, name, index)

    @staticmethod
    def _guess(schema):
        if "properties" in schema or "required" in schema:
            return "object"
        if "items" in schema or "prefixItems" in schema:
            return "array"
        if any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
            return "number"
        return "string"

    def _object(self, schema, depth):
        properties = schema.get("properties") if isinstance(schema.get("properties"), dict) else {}
        required = [r for r in schema.get("required") or [] if isinstance(r, str)]
        ordering = [p for p in schema.get("propertyOrdering") or [] if p in properties]
        names = ordering + [p for p in properties if p not in ordering]
        chosen = [p for p in names if p in required or depth < _MAX_DEPTH // 2]
        value = {p: self.build(properties[p], p, depth + 1, 0) for p in chosen}
        extra = schema.get("additionalProperties")
        for missing in (r for r in required if r not in value):  # required but not described
            value[missing] = self.build(extra if isinstance(extra, dict) else {}, missing, depth + 1, 0)
        wanted = _count(schema.get("minProperties")) or 0
        filler = 0
        while len(value) < wanted and extra is not False and filler < 64:
            filler += 1
            value.setdefault(f"key{filler}", self.build(extra if isinstance(extra, dict) else {}, f"key{filler}",
                                                        depth + 1, filler))
        return value

    def _array(self, schema, name, depth):
        prefix = schema.get("prefixItems") if isinstance(schema.get("prefixItems"), list) else []
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        low = _count(schema.get("minItems")) or 0
        high = _count(schema.get("maxItems"))
        count = max(low, len(prefix), 1 if depth < _MAX_DEPTH else 0)
        if high is not None:
            count = min(count, high)
        values = []
        for number in range(count):
            item = prefix[number] if number < len(prefix) else items
            values.append(self.build(item, name, depth + 1, number))
        return values

    @staticmethod
    def _number(schema, index, integer):
        low, high = schema.get("minimum"), schema.get("maximum")
        low_open, high_open = schema.get("exclusiveMinimum"), schema.get("exclusiveMaximum")
        if isinstance(low_open, bool):  # draft 4 and OpenAPI 3.0: a flag on minimum
            low_open, low = (low, None) if low_open else (None, low)
        if isinstance(high_open, bool):
            high_open, high = (high, None) if high_open else (None, high)
        step = 1 if integer else 0.5
        floor = low if isinstance(low, (int, float)) and not isinstance(low, bool) else None
        if isinstance(low_open, (int, float)) and not isinstance(low_open, bool):
            bound = low_open + step if integer else low_open + min(step, _gap(low_open, high, high_open))
            floor = bound if floor is None else max(floor, bound)
        ceiling = high if isinstance(high, (int, float)) and not isinstance(high, bool) else None
        if isinstance(high_open, (int, float)) and not isinstance(high_open, bool):
            bound = high_open - step if integer else high_open - min(step, _gap(floor, high_open, None))
            ceiling = bound if ceiling is None else min(ceiling, bound)
        if integer:
            floor = None if floor is None else _ceil(floor)
            ceiling = None if ceiling is None else _floor(ceiling)
        value = floor + index * step if floor is not None else 1 + index
        if ceiling is not None and value > ceiling:
            value = ceiling if floor is None or ceiling >= floor else floor
        return int(value) if integer else float(value)

    @staticmethod
    def _string(schema, name, index):
        text = _FORMATS.get(str(schema.get("format") or "").lower())
        if text is None:
            text = f"emulated {name}" + (f" {index}" if index else "")
        low, high = _count(schema.get("minLength")), _count(schema.get("maxLength"))
        if low is not None and len(text) < low:
            text = text + "x" * (low - len(text))
        if high is not None and len(text) > high:
            text = text[:high]
        return text


def _count(value):
    """A count as Gemini's OpenAPI schema may spell it: an int, or int64 as a JSON string ("2")."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _gap(low, high, high_open):
    """Half the room between two bounds (so a number can sit strictly inside), 0.5 when unbounded."""
    top = high_open if isinstance(high_open, (int, float)) and not isinstance(high_open, bool) else high
    if isinstance(low, (int, float)) and isinstance(top, (int, float)) and top > low:
        return (top - low) / 2
    return 0.5


def _ceil(number):
    return int(number) if number == int(number) else int(number) + (1 if number > 0 else 0)


def _floor(number):
    return int(number) if number == int(number) else int(number) - (1 if number < 0 else 0)
