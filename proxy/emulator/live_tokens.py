"""Ephemeral tokens for the Live API, emulated: POST /v1alpha/auth_tokens mints one for a key's project; the
Constrained endpoint spends a use of it and applies the setup it locks."""
import copy
import datetime
import json
import secrets
import time

from flask import Response, request

from . import replies

_DEFAULT_EXPIRY = 30 * 60  # seconds: a token's messages are refused after this, unless expireTime says
_DEFAULT_NEW_SESSION_EXPIRY = 60  # seconds: new sessions are refused after this, unless newSessionExpireTime says


def _moment(text, default):
    """An RFC 3339 time as seconds since the epoch (a time without a zone is UTC)."""
    if not text:
        return default
    moment = datetime.datetime.fromisoformat(str(text).replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.timezone.utc)
    return moment.timestamp()


def mint(body, key, now):
    """The token a request body asks for: (its public resource, what the emulator keeps of it)."""
    setup = body.get("bidiGenerateContentSetup") or {}
    setup = setup.get("setup", setup) if isinstance(setup, dict) else {}
    mask = body.get("fieldMask")
    kept = {"key": key, "uses": int(body.get("uses", 1)), "used": 0,
            "expire": _moment(body.get("expireTime"), now + _DEFAULT_EXPIRY),
            "new_session_expire": _moment(body.get("newSessionExpireTime"), now + _DEFAULT_NEW_SESSION_EXPIRY),
            "setup": setup,
            "mask": [path.strip() for path in mask.split(",") if path.strip()] if isinstance(mask, str) else None}
    return {"name": f"auth_tokens/{secrets.token_urlsafe(24)}"}, kept


def spend(tokens, lock, name, now, resuming=False):
    """The token kept under `name` with a use spent (resuming a session spends none), or None when it is
    unknown, past its time for new sessions, or used up."""
    with lock:
        token = tokens.get(name)
        if token is None or now > token["expire"] or (not resuming and now > token["new_session_expire"]):
            return None
        if not resuming:
            if token["uses"] and token["used"] >= token["uses"]:
                return None
            token["used"] += 1
        return token


def constrained_setup(token, asked):
    """The setup a session on a token runs with: with no field mask the token's whole setup is locked (the
    client's stands only where the token sets nothing); with a mask, just the fields it names."""
    locked = token["setup"]
    if token["mask"] is None:
        return {**asked, **copy.deepcopy(locked)} if locked else asked
    setup = copy.deepcopy(asked)
    for path in token["mask"]:
        *parents, leaf = path.split(".")
        source, target = locked, setup
        for name in parents:
            source = source.get(name) if isinstance(source, dict) else None
            target = target.setdefault(name, {})
        if isinstance(source, dict) and leaf in source:
            target[leaf] = copy.deepcopy(source[leaf])
        else:
            target.pop(leaf, None)
    return setup


def register_tokens(app, state, live):
    @app.post("/v1alpha/auth_tokens")
    def create_auth_token():
        key = request.headers.get("x-goog-api-key") or request.args.get("key") or ""
        refusal = replies.key_refusal(key, state.valid_keys)
        if refusal is not None:
            return Response(json.dumps(refusal[1]), status=refusal[0], mimetype="application/json")
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict):
            body = {}
        now = time.time()
        try:
            resource, kept = mint(body, key, now)
        except (TypeError, ValueError) as exc:
            error = replies.error_body(400, f"Invalid value in AuthToken: {exc}"[:200])
            return Response(json.dumps(error), status=400, mimetype="application/json")
        with state.lock:
            live.tokens[resource["name"]] = kept
        return Response(json.dumps(resource), mimetype="application/json")
