"""Request bodies checked against their model's JSON Schema by a validator built once per app.

Flask-RESTX's expect(validate=True) renders the model's schema and builds a new validator on every
request, about a tenth of the calls /gemini/generate makes."""
from functools import wraps

from flask import current_app, request
from jsonschema import Draft4Validator

from ..errors import InvalidRequest


def _schema(model):
    schema = dict(model.__schema__)
    if "enum" in schema.get("properties", {}).get("model", {}):
        # The chain's models are listed for /docs; which model a caller may name is the API's to say, with
        # its own error (MODEL_NOT_ALLOWED), and with a caller's own Gemini key, Gemini's.
        schema["properties"] = dict(schema["properties"], model={
            key: value for key, value in schema["properties"]["model"].items() if key != "enum"})
    return schema


def _validator(model):
    validators = current_app.extensions.setdefault("validators", {})
    validator = validators.get(model.name)
    if validator is None:
        from . import api  # every namespace's models, which the schema's $refs name

        definitions = {name: each.__schema__ for name, each in api.models.items()}
        validator = validators[model.name] = Draft4Validator({**_schema(model), "definitions": definitions},
                                                             format_checker=api.format_checker)
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
