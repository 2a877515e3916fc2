"""The REST API: Flask-RESTX namespaces, documented at /docs."""
from flask import redirect
from flask_restx import Api

from .. import __version__
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
)
api.add_namespace(generate_ns)
api.add_namespace(health_ns)
