"""Operator endpoints under /admin: client key management, guarded by ADMIN_API_KEY."""
from flask import current_app
from flask_restx import Namespace, Resource, fields

from config import valid_rate_limit
from models import INTEGER_MAX

from ..access import clients, resources
from ..errors import InvalidRequest, NotFound
from .schemas import UtcDateTime, document_errors, error_detail, error_model, nullable
from .validation import expect_valid

ns = Namespace("admin", description="Client keys (send ADMIN_API_KEY as X-API-KEY)", path="/admin")
ns.add_model("ErrorDetail", error_detail)
ns.add_model("Error", error_model)

client_model = ns.model("Client", {
    "id": fields.Integer(description="Client id", example=3),
    "name": fields.String(description="Who the key is for", example="ci-pipeline"),
    "key_prefix": fields.String(description="The key's first characters, to recognise it", example="gp_Xk3f9aQ"),
    "source": fields.String(description="cli, admin or env (API_KEYS)", example="admin"),
    "active": fields.Boolean(description="False once revoked"),
    "state": fields.String(enum=["active", "rotated", "revoked"], example="active",
                           description="rotated: it answers only to the secret that replaced its first. A client "
                                       "from API_KEYS that was revoked or rotated stays refused its API_KEYS key "
                                       "across restarts, until POST /admin/clients/{id}/restore"),
    "from_api_keys": fields.Boolean(description="Whether it came from the API_KEYS setting (source env)"),
    "rate_limit": nullable(fields.String)(description="Override of RATE_LIMIT, Flask-Limiter syntax",
                                          example="10/minute"),
    "daily_token_quota": nullable(fields.Integer)(description="Tokens a day (UTC); 0 unlimited; empty: default"),
    "created_at": UtcDateTime(description="When it was issued (UTC)"),
    "rotated_at": nullable(UtcDateTime)(description="When its secret last changed (UTC)"),
    "revoked_at": nullable(UtcDateTime)(description="When it was revoked (UTC)"),
})

issued_model = ns.inherit("IssuedClient", client_model, {
    "api_key": fields.String(description="The secret: shown this once, only its hash is kept",
                             example="gp_Xk3f9aQ..."),
})

_UNIT = r"\s*\d+\s*(/|per)\s*(\d+\s*)?(second|minute|hour|day|month|year)s?\s*"
RATE_LIMIT_PATTERN = rf"^{_UNIT}([;,]{_UNIT})*$"

create_model = ns.model("CreateClient", {
    "name": fields.String(required=True, min_length=1, max_length=100, description="Who the key is for",
                          example="ci-pipeline"),
    "rate_limit": fields.String(description="Override of RATE_LIMIT", example="10/minute;1000/day",
                                pattern=RATE_LIMIT_PATTERN, max_length=100),
    "daily_token_quota": fields.Integer(min=0, max=INTEGER_MAX, example=200000,
                                        description="Tokens a day (UTC); 0 unlimited"),
}, strict=True)


def _find(client_id):
    try:
        return clients.resolve(client_id)
    except clients.ClientNotFound:
        raise NotFound(f"No client with id {client_id}.") from None


@ns.route("/clients")
class ClientList(Resource):
    @ns.marshal_list_with(client_model, description="Every client, revoked ones included")
    @document_errors(ns, 401, 403)
    def get(self):
        """List client keys (never their secrets)."""
        return clients.all_clients()

    @expect_valid(ns, create_model)
    @ns.marshal_with(issued_model, code=201, description="Issued; the secret is in api_key, shown once")
    @document_errors(ns, 400, 401, 403)
    def post(self):
        """Issue a client key."""
        payload = ns.payload
        limit = payload.get("rate_limit")
        if limit and not valid_rate_limit(limit):
            raise InvalidRequest(f"rate_limit {limit!r} is not a limit such as 10/minute;1000/day.")
        client, secret = clients.create(payload["name"], limit, payload.get("daily_token_quota"), source="admin")
        client.api_key = secret
        return client, 201


@ns.route("/clients/<int:client_id>/revoke")
class ClientRevoke(Resource):
    @ns.marshal_with(client_model, description="Revoked: the key stops working at once (from API_KEYS: across "
                                               "restarts too, until restored)")
    @document_errors(ns, 401, 403, 404)
    def post(self, client_id):
        """Revoke a client key."""
        _find(client_id)
        return clients.revoke(client_id)


@ns.route("/clients/<int:client_id>/rotate")
class ClientRotate(Resource):
    @ns.marshal_with(issued_model, description="A new secret in api_key; the old one stops at once")
    @document_errors(ns, 400, 401, 403, 404)
    def post(self, client_id):
        """Give a client a new secret, keeping its history."""
        if not _find(client_id).active:
            raise InvalidRequest(f"Client {client_id} is revoked.")
        client, secret = clients.rotate(client_id)
        client.api_key = secret
        return client


@ns.route("/clients/<int:client_id>/restore")
class ClientRestore(Resource):
    @ns.marshal_with(client_model, description="Restored: active again; a client from API_KEYS is back on "
                                               "its API_KEYS key, and a secret it was rotated to stops at once")
    @document_errors(ns, 400, 401, 403, 404)
    def post(self, client_id):
        """Undo a revocation, or put a client from API_KEYS back on its API_KEYS key."""
        _find(client_id)
        try:
            return clients.restore(client_id, current_app.config["API_KEYS"])
        except clients.CannotRestore as exc:
            raise InvalidRequest(str(exc)) from None


resource_model = ns.model("OwnedResource", {
    "name": fields.String(description="Gemini's name of the resource", example="cachedContents/abc123"),
    "kind": fields.String(description="Its collection", example="cachedContents"),
    "key_id": fields.String(description="Fingerprint of the server key whose project holds it",
                            example="key#3f2a9c1b"),
    "client_id": nullable(fields.Integer)(description="The client that made it (empty: made while the proxy "
                                                      "had no client keys)"),
    "model": nullable(fields.String)(description="The model it was made for, where it has one"),
    "created_at": UtcDateTime(description="When the proxy saw it made (UTC)"),
    "ended_at": nullable(UtcDateTime)(description="A batch or operation: when the proxy first saw it end"),
    "usage_counted_at": nullable(UtcDateTime)(description="A batch: when its usage was counted"),
    "deleted_at": nullable(UtcDateTime)(description="When it was deleted through the proxy"),
})

_resource_args = ns.parser()
_resource_args.add_argument("kind", type=str, location="args", help="Only this collection, e.g. batches")
_resource_args.add_argument("client_id", type=int, location="args", help="Only this client's")
_resource_args.add_argument("limit", type=int, default=100, location="args", help="At most this many (1-1000)")
_resource_args.add_argument("offset", type=int, default=0, location="args", help="Skip this many")


@ns.route("/resources")
class ResourceList(Resource):
    @ns.expect(_resource_args)
    @ns.marshal_list_with(resource_model, description="Stateful resources made through server keys, newest first "
                                                      "(thought signatures' digests included, as kind "
                                                      "thoughtSignatures)")
    @document_errors(ns, 400, 401, 403)
    def get(self):
        """Every client's caches, batches, files, operations, stores and interactions, with their key."""
        args = _resource_args.parse_args()
        if not 1 <= args["limit"] <= 1000 or not 0 <= args["offset"] <= INTEGER_MAX:
            raise InvalidRequest("limit is 1 to 1000 and offset at least 0.")
        if args["client_id"] is not None and not 0 <= args["client_id"] <= INTEGER_MAX:
            raise InvalidRequest("client_id is a client's id.")
        if args["kind"] is not None and args["kind"] not in resources.KINDS:
            raise InvalidRequest(f"kind is one of {', '.join(sorted(resources.KINDS))}.")
        return resources.all_resources(args["kind"], args["client_id"], args["limit"], args["offset"])
