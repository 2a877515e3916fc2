"""GET /dashboard, /dashboard/requests, /dashboard/clients: the operator's pages over the analytics and
admin APIs, with their own scripts, style and vendored Chart.js (no CDN: it works offline)."""
from flask import Blueprint, make_response, render_template

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/dashboard/static")

# The pages load only their own scripts and style and talk only to this server. Chart.js sets sizes through
# the CSSOM (element.style), which style-src does not govern, so no 'unsafe-inline' is needed.
_CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")

# page: (title, view function); each page is templates/<page>.html with static/<page>.js
PAGES = {"overview": ("Overview", "dashboard"), "requests": ("Request log", "request_log"),
         "clients": ("Clients", "client_list")}


def _page(name):
    # A page holds no data; every figure comes from /analytics and /admin, which ask for the admin key.
    response = make_response(render_template(f"{name}.html", page=name, pages=PAGES))
    response.headers["Content-Security-Policy"] = _CSP
    response.headers["Cache-Control"] = "no-cache"
    response.headers["Referrer-Policy"] = "no-referrer"
    return response


@bp.get("/dashboard")
def dashboard():
    return _page("overview")


@bp.get("/dashboard/requests")
def request_log():
    return _page("requests")


@bp.get("/dashboard/clients")
def client_list():
    return _page("clients")
