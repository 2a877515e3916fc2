"""GET /dashboard: a self-contained page over the analytics API (no CDN: it works offline)."""
from flask import Blueprint, make_response, render_template

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/dashboard/static")

# The page loads only its own script and style and talks only to this server.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")


@bp.get("/dashboard")
def dashboard():
    # The page itself holds no data; every figure comes from /analytics, which asks for the admin key.
    response = make_response(render_template("dashboard.html"))
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-cache"
    return response
