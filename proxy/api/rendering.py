"""A resource's answer written as Flask-RESTX writes it, without negotiating the media type on each request."""
from flask import current_app
from flask_restx.representations import dumps  # Flask-RESTX's own: ujson's where it is installed

MEDIA_TYPE = "application/json"  # the API's default and only representation


def restx_json(data, code=200):
    """The Response Flask-RESTX makes of a resource's `data` (representations.output_json, then its Content-Type).
    With JSON its only representation, its content negotiation (the Accept header parsed twice, the answer
    unpacked twice, a text/html response made and re-typed) always ends in this; tests/test_rendering.py holds
    the two to the same status, headers and bytes."""
    app = current_app._get_current_object()
    settings = app.config.get("RESTX_JSON", {})
    if app.debug:
        settings.setdefault("indent", 4)  # as output_json does, into the app's own settings
    return app.response_class(dumps(data, **settings) + "\n", status=code, content_type=MEDIA_TYPE)
