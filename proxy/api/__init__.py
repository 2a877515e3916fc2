"""The REST API: Flask-RESTX namespaces, documented at /docs."""
from flask import current_app, has_app_context, redirect
from flask_restx import Api

from .. import __version__
from .admin import ns as admin_ns
from .analytics import ns as analytics_ns
from .compat import ns as compat_ns
from .errors import error_response
from .generate import ns as generate_ns
from .health import ns as health_ns
from .usage import ns as usage_ns


class ProxyApi(Api):
    def handle_error(self, e):
        # Every error, validation failures included, leaves in the one documented shape.
        return error_response(e)

    def render_root(self):
        return redirect("/docs")

    @property
    def __schema__(self):
        """The spec, listing the models the app serving it accepts: per app, changing no shared model."""
        shared = super().__schema__
        if not has_app_context() or "definitions" not in shared:
            return shared
        extensions = current_app.extensions
        own = extensions.get("swagger_spec")
        if own is None and extensions.get("documented_models") is not None:
            own = extensions["swagger_spec"] = _listing_models(shared, extensions["documented_models"])
        return own or shared


# The request models whose `model` /docs lists as an enum. Which model a caller may name is still the API's
# to say, with its own error (MODEL_NOT_ALLOWED), and with a caller's own Gemini key, Gemini's.
_LISTS_MODELS = ("GenerateRequest", "CompatRequest")


def _listing_models(spec, models):
    definitions = dict(spec["definitions"])
    for name in _LISTS_MODELS:
        schema = definitions[name]
        properties = dict(schema["properties"], model=dict(schema["properties"]["model"], enum=list(models)))
        definitions[name] = dict(schema, properties=properties)
    return dict(spec, definitions=definitions)


api = ProxyApi(
    version=__version__,
    title="Gemini Proxy",
    description="A gateway in front of Google's Gemini API: generation with retry and model fallback, "
                "usage recording and health.",
    doc="/docs",
    authorizations={"apikey": {"type": "apiKey", "in": "header", "name": "X-API-KEY",
                               "description": "A client key (or ADMIN_API_KEY for /admin); "
                                              "Authorization: Bearer works too"}},
    security="apikey",
)


def init_api(app, models):
    """Bind the API to `app`, whose /docs lists `models` (the chain) as those a request may name."""
    app.extensions["documented_models"] = list(models)
    api.init_app(app)


api.add_namespace(generate_ns)
api.add_namespace(compat_ns)
api.add_namespace(health_ns)
api.add_namespace(admin_ns)
api.add_namespace(analytics_ns)
api.add_namespace(usage_ns)
