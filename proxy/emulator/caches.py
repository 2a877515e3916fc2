"""Gemini's cachedContents, emulated: create, get, list, patch (ttl or expireTime) and delete, each cache
its key's project's; an expired cache is gone, as at Google. Its token count is what countTokens would say
of its texts."""
from datetime import timedelta

from flask import jsonify, request

from . import replies
from .paging import Caller, new_id, now, page, parse_duration, parse_stamp, stamp
from .reading import BadRequest, field, texts

_DEFAULT_TTL = timedelta(hours=1)  # Google's default when neither ttl nor expireTime is given


def _expiry(body, start):
    ttl = body.get("ttl")
    expire = field(body, "expireTime", "expire_time")
    try:
        if ttl is not None:
            return start + timedelta(seconds=parse_duration(ttl))
        if expire is not None:
            return parse_stamp(expire)
    except (ValueError, OverflowError):
        raise BadRequest("Invalid value at 'cached_content.ttl' or 'expire_time'.") from None
    return None


def _token_count(body):
    contents = body.get("contents") or []
    if not isinstance(contents, list):
        raise BadRequest("Invalid value at 'cached_content.contents'.")
    system = field(body, "systemInstruction", "system_instruction")
    counted = [text for content in contents if isinstance(content, dict) for text in texts(content)]
    if isinstance(system, dict):
        counted += texts(system)
    return replies.count_tokens(" ".join(counted))


def usable_cache(state, name, key):
    """The cache `name` if `key`'s project holds it unexpired, else None: what generateContent with
    cachedContent should check (Google answers another project's cache with 403)."""
    held = state.owned(name, key) if isinstance(name, str) else None
    if held is not None and parse_stamp(held["expireTime"]) <= now():
        state.forget(name)
        return None
    return held


def register_caches(app, state, versions, google_error):
    caller = Caller(state, versions, google_error)

    def live(name, key):
        return usable_cache(state, name, key)

    def not_found(name):
        return caller.error(403, f"CachedContent not found (or permission denied): {name}")

    @app.post("/<version>/cachedContents")
    def create_cache(version):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        body = request.get_json(force=True, silent=True)
        if not isinstance(body, dict) or not isinstance(body.get("model"), str):
            return caller.error(400, "* CreateCachedContentRequest.cached_content.model: model is required")
        model = body["model"].removeprefix("models/")
        if model not in replies.MODELS:
            return caller.error(404, f"models/{model} is not found for API version {version}.")
        created = now()
        try:
            expires = _expiry(body, created) or created + _DEFAULT_TTL
            tokens = _token_count(body)
        except BadRequest as exc:
            return caller.error(400, str(exc))
        name = f"cachedContents/{new_id()}"
        # Google answers with the metadata only: contents, tools and the instruction are not given back.
        resource = {"name": name, "model": f"models/{model}", "createTime": stamp(created),
                    "updateTime": stamp(created), "expireTime": stamp(expires),
                    "usageMetadata": {"totalTokenCount": tokens}}
        display = field(body, "displayName", "display_name")
        if display:
            resource["displayName"] = display
        state.keep(name, key, resource)
        return jsonify(resource)

    @app.get("/<version>/cachedContents")
    def list_caches(version):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        held = [c for c in state.owned_by(key, "cachedContents/") if live(c["name"], key) is not None]
        body = page(held, "cachedContents", default_size=100)
        return jsonify(body) if body is not None else caller.error(400, "Invalid page token.")

    @app.route("/<version>/cachedContents/<cache_id>", methods=["GET", "PATCH", "DELETE"])
    def one_cache(version, cache_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        name = f"cachedContents/{cache_id}"
        held = live(name, key)
        if held is None:
            return not_found(name)
        if request.method == "DELETE":
            state.forget(name)
            return jsonify({})
        if request.method == "PATCH":
            body = request.get_json(force=True, silent=True)
            body = body if isinstance(body, dict) else {}
            mask = request.args.get("updateMask") or request.args.get("update_mask") or "ttl,expireTime"
            changed = now()
            try:
                expires = _expiry({k: v for k, v in body.items() if k in mask or
                                   (k == "expire_time" and "expire" in mask)}, changed)
            except BadRequest as exc:
                return caller.error(400, str(exc))
            held = {**held, "updateTime": stamp(changed)}
            if expires is not None:
                held["expireTime"] = stamp(expires)
            state.keep(name, key, held)
        return jsonify(held)
