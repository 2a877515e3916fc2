"""Who is calling: client keys on every generation API, the admin key on operator endpoints."""
import hmac

from flask import current_app, g, request

from ..errors import AdminDisabled, Unauthorized
from ..passthrough import uploads
from . import clients

API, NATIVE, ADMIN = "api", "native", "admin"
_AREAS = (("/gemini/", API), ("/gemini-proxy", API), ("/v1beta/", NATIVE), ("/v1/", NATIVE),
          ("/upload/v1beta/", NATIVE), ("/upload/v1/", NATIVE), ("/admin/", ADMIN), ("/analytics/", ADMIN),
          ("/metrics", ADMIN))


def area_of(path):
    for prefix, area in _AREAS:
        if path.startswith(prefix):
            return area
    return None


def _bearer():
    header = request.headers.get("Authorization", "")
    return header[7:].strip() if header[:7].lower() == "bearer " else ""


def keys_required():
    return current_app.config["REQUIRE_API_KEY"] or clients.any_issued()


def authenticate():
    """before_request: sets g.client (or None when the proxy is open); raises 401 when it must."""
    # The objects behind Flask's proxies, looked up once: every request passes here.
    state, incoming = g._get_current_object(), request._get_current_object()
    state.area = area = area_of(incoming.path)
    state.client = client = None
    state.proxy_key_slot = None  # where a native client put its proxy key, to be swapped for a server key
    if area is None or incoming.method == "OPTIONS":
        return
    if area == ADMIN:
        return require_admin()
    headers = incoming.headers
    explicit = headers.get("X-API-KEY", "").strip()
    if explicit:
        client = clients.find_active(explicit)
    elif area == API:
        client = clients.find_active(_bearer())
    else:
        for slot, value in (("header", headers.get("x-goog-api-key", "").strip()),
                            ("query", incoming.args.get("key", "").strip()), ("bearer", _bearer())):
            client = clients.find_active(value) if value else None
            if client is not None:
                state.proxy_key_slot = slot
                break
    state.client = client
    if client is None and area == NATIVE and uploads.signed_chunk(incoming):
        return  # a chunk of an upload a client began here: the URL it was given is its credential
    if client is None and keys_required():
        presented = explicit or _bearer() or (area == NATIVE and (
            headers.get("x-goog-api-key", "").strip() or incoming.args.get("key", "").strip()))
        raise Unauthorized("The API key is not valid or has been revoked." if presented else
                           "An API key is required: send it as X-API-KEY or Authorization: Bearer.")


def require_admin():
    """Operator endpoints: the admin key when one is set; closed when keys are on and none is."""
    admin_key = current_app.config["ADMIN_API_KEY"]
    if not admin_key:
        if keys_required():
            raise AdminDisabled("Operator endpoints are off: set ADMIN_API_KEY to use them.")
        return
    presented = request.headers.get("X-API-KEY", "").strip() or _bearer()
    if not presented or not hmac.compare_digest(presented.encode(), admin_key.encode()):
        raise Unauthorized("The admin key is required here.")


def auth_mode():
    return "keys" if keys_required() else "open"
