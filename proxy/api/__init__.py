"""The REST API: Flask-RESTX namespaces, documented at /docs."""
from flask import redirect
from flask_restx import Api

from .. import __version__
from .admin import ns as admin_ns
from .analytics import ns as analytics_ns
from .compat import ns as compat_ns
from .errors import error_response
from .generate import ns as generate_ns
from .health import ns as health_ns


class ProxyApi(Api):
    def handle_error(self, e):
        # Every error, validation failures included, leaves in the one documented shape.
        return error_response(e)

    def render_root(self):
        return redirect("/docs")


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


def document_models(models):
    """Let /docs list the models this deployment accepts (one app per process in production)."""
    from .compat import request_model as compat_request
    from .generate import request_model as generate_request

    for schema in (generate_request, compat_request):
        schema["model"].enum = list(models)


api.add_namespace(generate_ns)
api.add_namespace(compat_ns)
api.add_namespace(health_ns)
api.add_namespace(admin_ns)
api.add_namespace(analytics_ns)
