"""Operator endpoints under /admin: client key management, guarded by ADMIN_API_KEY."""
from flask import current_app, request
from flask_restx import Namespace, Resource, fields

from config import BUDGET_USD_MAX, valid_rate_limit
from models import INTEGER_MAX

from ..access import budgets, clients, resources, terms
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
    "budget_usd": nullable(fields.Float)(description="Its budget in USD per budget_period; empty: none",
                                         example=25.0),
    "budget_period": nullable(fields.String)(enum=list(budgets.PERIODS), example="month",
                                             description="day or month (UTC) the budget is for"),
    "spent_usd": nullable(fields.Float)(description="Spent (and held by requests in flight) this budget period, "
                                                    "USD; empty: no budget", example=3.21),
    "budget_resets_at": nullable(UtcDateTime)(description="When this budget period ends (UTC)"),
    "models": nullable(fields.List)(fields.String, description="The only models it may use; empty: every model "
                                                               "the proxy offers", example=["gemini-2.5-flash"]),
    "expires_at": nullable(UtcDateTime)(description="From when the key is refused (KEY_EXPIRED); empty: never"),
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
    "budget_usd": fields.Float(min=0, max=BUDGET_USD_MAX, example=25.0,
                               description="USD the key may spend per budget_period (0: nothing)"),
    "budget_period": fields.String(enum=list(budgets.PERIODS), example="month",
                                   description="day or month (UTC); month when a budget is given without one"),
    "models": fields.List(fields.String(max_length=200), min_items=1, max_items=terms.MODELS_MAX,
                          example=["gemini-2.5-flash"], description="The only models the key may use"),
    "expires_at": fields.String(example="2027-01-31T00:00:00Z", max_length=40,
                                description="ISO 8601 date or date-time (UTC unless it has an offset) from "
                                            "which the key is refused"),
}, strict=True)

update_model = ns.model("UpdateClient", {
    "rate_limit": nullable(fields.String)(description="Override of RATE_LIMIT; null: the default",
                                          example="10/minute"),
    "daily_token_quota": nullable(fields.Integer)(min=0, max=INTEGER_MAX, description="Tokens a day; null: default"),
    "budget_usd": nullable(fields.Float)(min=0, max=BUDGET_USD_MAX, example=50.0,
                                         description="USD per budget_period; null: no budget"),
    "budget_period": nullable(fields.String)(enum=list(budgets.PERIODS), example="day",
                                             description="day or month (UTC)"),
    "models": nullable(fields.List)(fields.String, description="The only models it may use; null: every one",
                                    example=["gemini-2.5-flash"]),
    "expires_at": nullable(fields.String)(description="ISO 8601 date or date-time; null: never",
                                          example="2027-01-31"),
})


def _with_spend(client, now=None):
    """The client, with what it spent this budget period (for its listing)."""
    client.spent_usd = client.budget_resets_at = None
    if client.budget_usd is not None and client.budget_period:
        now = now or budgets.utcnow()
        ledgers = current_app.extensions["budgets"]
        client.spent_usd = round(ledgers.spent(client.id, client.budget_period, now) / budgets.MICRO, 6)
        client.budget_resets_at = budgets.period_end(client.budget_period, now)
    return client


def _terms(given, current_period=None):
    try:
        return terms.parse(given, current_period)
    except terms.BadTerm as exc:
        raise InvalidRequest(f"{exc.field} {exc.message}.", details={exc.field: exc.message}) from None


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
        """List client keys (never their secrets), with each budget's spend this period."""
        now = budgets.utcnow()
        return [_with_spend(client, now) for client in clients.all_clients()]

    @expect_valid(ns, create_model)
    @ns.marshal_with(issued_model, code=201, description="Issued; the secret is in api_key, shown once")
    @document_errors(ns, 400, 401, 403)
    def post(self):
        """Issue a client key."""
        payload = ns.payload
        limit = payload.get("rate_limit")
        if limit and not valid_rate_limit(limit):
            raise InvalidRequest(f"rate_limit {limit!r} is not a limit such as 10/minute;1000/day.")
        given = _terms({name: payload[name] for name in ("budget_usd", "budget_period", "models", "expires_at")
                        if name in payload})
        try:
            name = terms.name(payload["name"])
        except terms.BadTerm as exc:
            raise InvalidRequest(f"name {exc.message}.", details={"name": exc.message}) from None
        client, secret = clients.create(name, limit, payload.get("daily_token_quota"), source="admin",
                                        **given)
        client.api_key = secret
        return _with_spend(client), 201


@ns.route("/clients/<int:client_id>")
class ClientItem(Resource):
    @ns.expect(update_model)
    @ns.marshal_with(client_model, description="Changed: its terms apply from the next request")
    @document_errors(ns, 400, 401, 403, 404)
    def patch(self, client_id):
        """Change a client key's budget, allowlist, expiry, rate limit or quota (null clears one)."""
        client = _find(client_id)
        # Not silent: a body the bounded parser refuses (NaN, a repeated field) says why, as on POST.
        payload = request.get_json()
        if not isinstance(payload, dict):
            raise InvalidRequest("Send a JSON object of the terms to change.")
        given = _terms(payload, client.budget_period)
        return _with_spend(clients.update(client.id, **given))


@ns.route("/clients/<int:client_id>/revoke")
class ClientRevoke(Resource):
    @ns.marshal_with(client_model, description="Revoked: the key stops working at once (from API_KEYS: across "
                                               "restarts too, until restored)")
    @document_errors(ns, 401, 403, 404)
    def post(self, client_id):
        """Revoke a client key."""
        _find(client_id)
        return _with_spend(clients.revoke(client_id))


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
        return _with_spend(client)


@ns.route("/clients/<int:client_id>/restore")
class ClientRestore(Resource):
    @ns.marshal_with(client_model, description="Restored: active again; a client from API_KEYS is back on "
                                               "its API_KEYS key, and a secret it was rotated to stops at once")
    @document_errors(ns, 400, 401, 403, 404)
    def post(self, client_id):
        """Undo a revocation, or put a client from API_KEYS back on its API_KEYS key."""
        _find(client_id)
        try:
            return _with_spend(clients.restore(client_id, current_app.config["API_KEYS"]))
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
