"""Request bodies checked against their model's JSON Schema by a validator built once per app.

Flask-RESTX's expect(validate=True) renders the model's schema and builds a new validator on every
request, and the validator resolves each nested model's $ref as it goes: together a sixth of the calls
/gemini/generate made."""
from functools import wraps

from flask import current_app, request
from jsonschema import Draft4Validator

from ..errors import InvalidRequest


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


def _validator(model):
    validators = current_app.extensions.setdefault("validators", {})
    validator = validators.get(model.name)
    if validator is None:
        from . import api  # every namespace's models, which the schema's $refs name

        definitions = {name: each.__schema__ for name, each in api.models.items()}
        schema = {**_inline(model.__schema__, definitions), "definitions": definitions}
        validator = validators[model.name] = Draft4Validator(schema, format_checker=api.format_checker)
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
