"""Who is calling: client keys on every generation API, the admin key on operator endpoints."""
import hmac

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError

from models import ApiClient, db

from ..errors import AdminDisabled, InvalidRequest, KeyExpired, NotFound, Unauthorized
from ..requestctx import ADMIN, API, LIVE, NATIVE, current as current_state, current_application, current_request
from ..wire import credentials, live as live_wire, native as native_wire, query as queries, references, routes
from ..wire import upload_urls
from . import clients, upload_grants

_AREAS = (("/gemini/", API), ("/gemini-proxy", API), *((f"/{prefix}{version}/", NATIVE)
          for prefix in ("",) + routes.PREFIXES for version in routes.VERSIONS),
          (live_wire.PREFIX, LIVE), ("/admin/", ADMIN), ("/analytics/", ADMIN), ("/metrics", ADMIN))


def area_of(path):
    for prefix, area in _AREAS:
        if path.startswith(prefix):
            return area
    return None


def keys_required():
    return current_application().config["REQUIRE_API_KEY"] or clients.any_issued()


def _read(incoming, area):
    """What the request presents (and on the pass-through, its parsed route and query); 4xx if malformed."""
    try:
        if area == NATIVE:
            native = native_wire.read(incoming.environ, credentials.EnvironHeaders(incoming.environ))
            return native, native.presented
        if area == LIVE:
            live = live_wire.read_request(incoming.path, incoming.environ.get("QUERY_STRING", ""), incoming.headers)
            if live is None:
                raise NotFound("The path is not one of the Live API's endpoints.")
            if incoming.headers.get("Upgrade", "").lower() != "websocket":
                raise InvalidRequest("The Live API is a WebSocket: open it with an Upgrade: websocket request.")
            return live, live.presented
        return None, credentials.presented(credentials.EnvironHeaders(incoming.environ))
    except routes.BadRoute as exc:
        raise (NotFound(str(exc)) if exc.status == 404 else InvalidRequest(str(exc))) from None
    except (queries.BadQuery, credentials.BadCredentials) as exc:
        raise InvalidRequest(str(exc)) from None


def _is_proxy_key(value):
    """Whether a key a client asks to send on to Gemini is one of the proxy's own, in any state."""
    if value.startswith(clients.KEY_PREFIX) or clients.find_active(value) is not None:
        return True
    try:
        return db.session.execute(select(ApiClient.id).where(
            ApiClient.key_hash == clients.hash_key(value))).first() is not None
    except SQLAlchemyError:
        db.session.rollback()
        return True  # unknown: forwarding a proxy key to Google is the worse mistake


_KEY_REQUIRED = "An API key is required: send it as X-API-KEY or Authorization: Bearer."
_KEY_REFUSED = "The API key is not valid or has been revoked."


def authenticate():
    """before_request: who is calling, in the request state (None when the proxy is open); 401 when it must."""
    state, incoming = current_state(), current_request()  # every request passes here
    state.area = area = area_of(incoming.path)
    if area is None or incoming.method == "OPTIONS":
        return
    if area == ADMIN:
        return require_admin()
    native, presented = _read(incoming, area)
    if area == LIVE:
        state.live, native = native, None
        client = _live_caller(state, presented)
    else:
        state.native = native
        client = _caller(state, area, presented)
    if _is_upload_chunk(native):
        return _admit_upload_chunk(state, native, incoming, client)
    if client is not None and client.expired(state.started_at):
        raise KeyExpired(f"This API key expired at {client.expires_at:%Y-%m-%dT%H:%M:%SZ}.")
    state.client = client
    if client is None and keys_required():
        raise Unauthorized(_KEY_REFUSED if _presents_any(presented) else _KEY_REQUIRED)


def _is_upload_chunk(native):
    """A chunk sent to an upload URL the proxy gave out (its grant in the query)."""
    return native is not None and native.route.upload and bool(native.query.get(upload_urls.PARAMETER))


def _presents_any(presented):
    return bool(presented.api_key or presented.bearer or presented.gemini)


def _caller(state, area, presented):
    """The active client the presented key belongs to, if any: X-API-KEY first, then Bearer on the /gemini
    APIs, then on the pass-through a proxy key put where Gemini expects its own (noted to be swapped)."""
    if presented.api_key:
        client = clients.find_active(presented.api_key)
        if client is not None and presented.gemini and _is_proxy_key(presented.gemini[1]):
            raise Unauthorized("A proxy key is never sent on to Gemini: send it as X-API-KEY alone, or in "
                               "x-goog-api-key, key= or Authorization alone.")
        return client
    if area == API:
        return clients.find_active(presented.bearer)
    if not presented.gemini:
        return None
    slot, value = presented.gemini
    client = clients.find_active(value)
    if client is not None:
        state.proxy_key_slot = slot
    return client


def _live_caller(state, presented):
    """A Live session's client: by its key, as on the pass-through, or by the ephemeral token it was given
    through this proxy (access.resources knows whose each token is)."""
    token = state.live.token
    if token is None:
        return _caller(state, NATIVE, presented)
    name = references.token_resource(token[1])
    owner = current_application().extensions["resource_owners"].find([name]).get(name)
    if owner is None or owner.client_id is None:
        return None
    return clients.find_by_id(owner.client_id)


def _admit_upload_chunk(state, native, incoming, client):
    """A chunk sent to an upload URL the proxy gave out: its grant names the client that began it."""
    extensions = current_application().extensions
    state.upload = upload_grants.admit(
        native, incoming.method, incoming.headers.get("X-Goog-Upload-Command", ""), client,
        extensions["forwarder"].pool, extensions["ended_uploads"])
    state.client = state.upload.client
    if state.client is None and keys_required():
        # Begun while the proxy was open: no client to charge now that it is closed.
        raise Unauthorized(_KEY_REQUIRED)


def require_admin():
    """Operator endpoints: the admin key when one is set; closed when keys are on and none is."""
    admin_key = current_application().config["ADMIN_API_KEY"]
    if not admin_key:
        if keys_required():
            raise AdminDisabled("Operator endpoints are off: set ADMIN_API_KEY to use them.")
        return
    try:
        presented = credentials.presented(current_request().headers)
    except credentials.BadCredentials as exc:
        raise InvalidRequest(str(exc)) from None
    given = presented.api_key or presented.bearer
    if not given or not hmac.compare_digest(given.encode(), admin_key.encode()):
        raise Unauthorized("The admin key is required here.")


def auth_mode():
    return "keys" if keys_required() else "open"
