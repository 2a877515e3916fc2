"""Request bodies checked against their model's JSON Schema by validators built once per app.

Flask-RESTX's expect(validate=True) renders the model's schema and builds a new validator on every
request, and the validator resolves each nested model's $ref as it goes: together a sixth of the calls
/gemini/generate made. Even built once, Python's jsonschema walks a body in some 170 calls; jsonschema_rs
(Rust) decides a valid body in one, and Python's jsonschema still words every refusal."""
import re
from functools import wraps

import jsonschema_rs
from flask import current_app, request
from jsonschema import Draft4Validator

from ..errors import InvalidRequest

# Keywords whose value is a schema, a list of schemas, or a map of names to schemas: the only places a
# "pattern" key is the keyword (elsewhere, in "enum" or "example", it is data, and a property may be named so).
_SUBSCHEMA = {"items", "additionalItems", "additionalProperties", "not"}
_SUBSCHEMAS = {"allOf", "anyOf", "oneOf"}
_NAMED_SUBSCHEMAS = {"properties", "definitions", "dependencies"}
_PYTHON_PATTERN = "x-python-pattern"


def _inline(schema, definitions, seen=()):
    """The schema with each $ref to a definition replaced by that definition, so that checking a body
    resolves no reference (which cost a third of the check). A model that contains itself keeps its $ref."""
    if isinstance(schema, list):
        return [_inline(item, definitions, seen) for item in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    name = ref.removeprefix("#/definitions/") if isinstance(ref, str) else None
    if name in definitions and name not in seen:
        return _inline(definitions[name], definitions, seen + (name,))
    return {key: _inline(value, definitions, seen) for key, value in schema.items()}


class _PythonPattern:
    """The pattern keyword as Python's jsonschema reads it (re.search). jsonschema_rs reads a pattern as
    ECMA-262 does, where \\s leaves out \\x1c-\\x1f and \\x85 and takes in \\ufeff, and $ never matches before a
    final newline: "\\x1c" would pass r"\\S" there and fail it here."""

    def __init__(self, parent_schema, value, schema_path):
        self.search = re.compile(value).search

    def validate(self, instance):
        if isinstance(instance, str) and not self.search(instance):
            raise ValueError("does not match the pattern")


def _python_patterns(schema):
    """The schema for jsonschema_rs: each pattern keyword renamed to the keyword _PythonPattern checks;
    None if the schema holds a regular expression jsonschema_rs would still read (patternProperties)."""
    if isinstance(schema, list):
        items = [_python_patterns(item) for item in schema]
        return None if None in items else items
    if not isinstance(schema, dict):
        return schema
    if "patternProperties" in schema or _PYTHON_PATTERN in schema:
        return None
    fast = {}
    for key, value in schema.items():
        if key == "pattern" and isinstance(value, str):
            key = _PYTHON_PATTERN
        elif key in _SUBSCHEMA or key in _SUBSCHEMAS:
            value = _python_patterns(value)
        elif key in _NAMED_SUBSCHEMAS and isinstance(value, dict):
            value = {name: _python_patterns(each) for name, each in value.items()}
            if None in value.values():
                return None
        if value is None and schema[key] is not None:
            return None
        fast[key] = value
    return fast


def fast_validator(schema, format_checker=None):
    """A jsonschema_rs validator that accepts no body Draft4Validator(schema) refuses (tests hold it to
    that), or None where it could not be trusted to."""
    fast_schema = _python_patterns(schema)
    if fast_schema is None or format_checker is not None:  # jsonschema_rs's formats are not Python's
        return None
    return jsonschema_rs.Draft4Validator(fast_schema, validate_formats=False,
                                         keywords={_PYTHON_PATTERN: _PythonPattern})


class SchemaCheck:
    """A model's schema, decided by jsonschema_rs and, for a body it does not accept, worded by jsonschema."""

    def __init__(self, schema, format_checker=None):
        self.python = Draft4Validator(schema, format_checker=format_checker)
        self.fast = fast_validator(schema, format_checker)

    def iter_errors(self, body):
        if self.fast is not None:
            try:
                if self.fast.is_valid(body):
                    return iter(())
            except Exception:  # a value it cannot convert (a lone surrogate): the Python validator decides
                pass
        return self.python.iter_errors(body)


def schema_of(model):
    """The model's JSON Schema, its references inlined, with every model it could still refer to."""
    from . import api  # every namespace's models, which the schema's $refs name

    definitions = {name: each.__schema__ for name, each in api.models.items()}
    return {**_inline(model.__schema__, definitions), "definitions": definitions}


def _validator(model):
    validators = current_app.extensions.setdefault("validators", {})
    validator = validators.get(model.name)
    if validator is None:
        from . import api

        validator = validators[model.name] = SchemaCheck(schema_of(model), format_checker=api.format_checker)
    return validator


def expect_valid(ns, model):
    """ns.expect(model) for /docs, and the JSON body checked against the model before the method runs."""
    def decorate(method):
        @wraps(method)
        def checked(*args, **kwargs):
            problems = dict(model.format_error(error) for error in _validator(model).iter_errors(request.get_json()))
            if problems:
                raise InvalidRequest("The request body does not match the schema.", details=problems)
            return method(*args, **kwargs)

        return ns.expect(model)(checked)

    return decorate
