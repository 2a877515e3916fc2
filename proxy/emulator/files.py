"""Gemini's Files API, emulated: resumable uploads under /upload/{version}/files, and files/{id} to get,
list, delete and (generated files only, as at Google) download, each file its key's project's. The upload id is a chunk's credential, and the SDKs send
chunks without a key; a chunk that carries a key other than the one that began the upload is refused, so a proxy that hands a chunk
to another key of its pool (another project, at Google) is caught here rather than there."""
import hashlib
import secrets
from datetime import datetime, timedelta, timezone

from flask import Response, jsonify, request

from . import replies
from .paging import new_id, page

_CHUNK_GRANULARITY = 8 * 1024 * 1024  # bytes: every chunk but the last is a multiple of this
_KEPT_FOR = timedelta(hours=48)  # Gemini keeps uploaded files two days


def _now():
    return datetime.now(timezone.utc)


def _stamp(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def add_file(state, key, data, mime_type, display_name="", source="GENERATED", name=None, version="v1beta"):
    """Hold `data` as a file of `key`'s project (a batch's responses, a video) and return its resource."""
    name = name or f"files/{new_id()}"
    now = _now()
    uri = f"{request.host_url}{version}/{name}"
    resource = {
        "name": name, "displayName": display_name or "", "mimeType": mime_type or "application/octet-stream",
        "sizeBytes": str(len(data)), "createTime": _stamp(now), "updateTime": _stamp(now),
        "expirationTime": _stamp(now + _KEPT_FOR), "sha256Hash": hashlib.sha256(data).hexdigest(),
        "uri": uri, "state": "ACTIVE", "source": source,
    }
    if source == "GENERATED":
        resource["downloadUri"] = f"{request.host_url}download/{version}/{name}:download?alt=media"
    state.keep(name, key, resource)
    with state.lock:
        state.blobs[name] = bytes(data)
    return resource


def file_bytes(state, name, key):
    """The bytes of `key`'s file `name`, or None when no file of that key's project has that name."""
    if state.owned(name, key) is None:
        return None
    with state.lock:
        return state.blobs.get(name)


def start_upload(state, key, version, display_name, mime_type, name=None, finish=None):
    """Begin a resumable upload of `key`'s and answer with its URL; the chunks go to /upload/{v}/files,
    and `finish(session)`, if given, makes the final answer (a file search store's operation)."""
    upload_id = secrets.token_hex(16)
    with state.lock:
        state.uploads[upload_id] = {
            "key": key, "version": version, "data": bytearray(), "display_name": display_name,
            "mime_type": request.headers.get("X-Goog-Upload-Header-Content-Type") or mime_type,
            "declared": request.headers.get("X-Goog-Upload-Header-Content-Length", type=int),
            "name": name, "finish": finish,
        }
    url = f"{request.host_url}upload/{version}/files?upload_id={upload_id}&upload_protocol=resumable"
    response = Response(status=200)
    response.headers.update({"X-Goog-Upload-URL": url, "X-Goog-Upload-Control-URL": url,
                             "X-Goog-Upload-Status": "active",
                             "X-Goog-Upload-Chunk-Granularity": str(_CHUNK_GRANULARITY)})
    return response


def register_files(app, state, versions, api_key, google_error):
    """Add the Files API routes to the emulator `app`; `api_key()` reads the caller's key, and
    `google_error(status, body)` answers in Google's error shape."""

    def error(status, message):
        return google_error(status, replies.error_body(status, message))

    def refused_key(key):
        refusal = replies.key_refusal(key, state.valid_keys)
        return None if refusal is None else google_error(*refusal)

    def seen(action, key, size=0):
        state.enter({"model": None, "action": action, "key": key, "query": dict(request.args), "bytes": size,
                     "headers": {name.lower(): value for name, value in request.headers.items()}, "body": None})
        state.leave()

    @app.post("/upload/<version>/files")
    def upload(version):
        key = api_key()
        if version not in versions:
            return error(404, f"Unknown API version {version}.")
        upload_id = request.args.get("upload_id")
        if upload_id is not None:
            return _chunk(upload_id, key)
        refused = refused_key(key)
        return refused if refused is not None else _start(version, key)

    def _start(version, key):
        seen("upload.start", key)
        command = request.headers.get("X-Goog-Upload-Command", "")
        if request.headers.get("X-Goog-Upload-Protocol") != "resumable" or command != "start":
            return error(400, "Only resumable uploads are supported: X-Goog-Upload-Protocol: resumable, "
                              "X-Goog-Upload-Command: start.")
        body = request.get_json(force=True, silent=True) or {}
        # Google's JSON parser takes a field by its JSON name or its proto name, as the SDKs send either.
        file = body.get("file") or {}
        wanted = {name: file.get(name, file.get(proto)) for name, proto in
                  (("displayName", "display_name"), ("mimeType", "mime_type"), ("name", "name"))}
        return start_upload(state, key, version, wanted.get("displayName"), wanted.get("mimeType"),
                            wanted.get("name"))

    def _chunk(upload_id, key):
        data = request.get_data(cache=False)
        seen("upload.chunk", key, len(data))
        command = request.headers.get("X-Goog-Upload-Command", "")
        with state.lock:
            session = state.uploads.get(upload_id)
            if session is None:
                return error(404, "No upload session with this id.")
            if key and session["key"] != key:
                return error(403, "The upload session was begun with another API key.")
            offset = request.headers.get("X-Goog-Upload-Offset", type=int)
            if offset != len(session["data"]):
                return error(400, f"X-Goog-Upload-Offset {offset} is not where the upload stands "
                                  f"({len(session['data'])}).")
            session["data"] += data
            received = len(session["data"])
            if "finalize" not in command:
                response = Response(status=200)
                response.headers.update({"X-Goog-Upload-Status": "active",
                                         "X-Goog-Upload-Size-Received": str(received)})
                return response
            del state.uploads[upload_id]
        if session["declared"] is not None and session["declared"] != received:
            return error(400, f"Received {received} bytes of the {session['declared']} declared.")
        finish = session.get("finish")  # another resource's upload (a file search store's) ends its own way
        body = finish(session) if finish else {"file": add_file(
            state, session["key"], session["data"], session["mime_type"], session["display_name"], "UPLOADED",
            session["name"] or f"files/{upload_id[:12]}", session["version"])}
        response = jsonify(body)
        response.headers["X-Goog-Upload-Status"] = "final"
        return response

    @app.route("/<version>/files/<file_id>", methods=["GET", "DELETE"])
    @app.get("/download/<version>/files/<file_id>")
    def one_file(version, file_id):
        key = api_key()
        refused = refused_key(key)
        if refused is not None or version not in versions:
            return refused or error(404, f"Unknown API version {version}.")
        file_id, _, verb = file_id.partition(":")
        seen("files.download" if verb == "download" else f"files.{request.method.lower()}", key)
        name = f"files/{file_id}"
        resource = state.owned(name, key)
        if resource is None or verb not in ("", "download"):
            # Another project's file is not there for this key, and Google says so as it does for none.
            return error(403, f"You do not have permission to access the File {file_id} or it may not exist.")
        if verb == "download":
            if resource["source"] != "GENERATED":
                return error(400, "Only generated files can be downloaded.")
            return Response(file_bytes(state, name, key), mimetype=resource["mimeType"])
        if request.method == "DELETE":
            state.forget(name)
            return jsonify({})
        return jsonify(resource)

    @app.get("/<version>/files")
    def list_files(version):
        key = api_key()
        refused = refused_key(key)
        if refused is not None or version not in versions:
            return refused or error(404, f"Unknown API version {version}.")
        seen("files.list", key)
        body = page(state.owned_by(key, "files/"), "files", default_size=10, max_size=100)
        return jsonify(body) if body is not None else error(400, "Invalid page token.")
