"""Gemini's File Search stores, emulated: fileSearchStores create/get/list/delete (force), a file uploaded
to one (resumable, as the SDK sends it) or imported from files/{id}, each an operation under the store that
ends in a document; documents list/get/delete. Every store is its key's project's, and so is what is in it."""
from flask import jsonify, request

from .files import file_bytes, start_upload
from .paging import Caller, json_object, new_id, now, page, stamp
from .reading import field

_TYPES = "type.googleapis.com/google.ai.generativelanguage.v1beta."


def foreign_stores(state, body, key):
    """The fileSearch store names a generateContent body names that are not `key`'s (generation refuses
    such a call with 403, as Google does for a store of another project)."""
    names = []
    for tool in (body or {}).get("tools") or []:
        search = field(tool, "fileSearch", "file_search") if isinstance(tool, dict) else None
        for name in field(search, "fileSearchStoreNames", "file_search_store_names") or []:
            if state.owned(name, key) is None:
                names.append(name)
    return names


def register_stores(app, state, versions, google_error):
    caller = Caller(state, versions, google_error)

    def denied(name):
        return caller.error(403, f"You do not have permission to access the FileSearchStore {name} or it may "
                                 "not exist.")

    def store_view(store, key):
        documents = state.owned_by(key, store["name"] + "/documents/")
        active = [d for d in documents if d["state"] == "STATE_ACTIVE"]
        return {**store, "activeDocumentsCount": str(len(active)),
                "sizeBytes": str(sum(int(d["sizeBytes"]) for d in active))}

    def operation(key, store, display_name, mime_type, data, metadata, upload):
        """An operation under `store` that, when done, has made a document of `data`."""
        kind = "upload/operations" if upload else "operations"
        name = f"{store}/{kind}/{new_id()}"
        state.keep(name, key, {"name": name, "store": store, "displayName": display_name or "",
                               "mimeType": mime_type or "text/plain", "data": bytes(data),
                               "customMetadata": metadata or [], "document": None,
                               "type": "UploadToFileSearchStoreResponse" if upload else "ImportFileResponse"})
        return {"name": name}

    @app.post("/<version>/fileSearchStores")
    def create_store(version):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        body = json_object()
        name = f"fileSearchStores/{new_id()}"
        created = stamp(now())
        store = {"name": name, "displayName": field(body, "displayName", "display_name") or "",
                 "createTime": created, "updateTime": created}
        state.keep(name, key, store)
        return jsonify(store_view(store, key))

    @app.get("/<version>/fileSearchStores")
    def list_stores(version):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        stores = [store_view(s, key) for s in state.owned_by(key, "fileSearchStores/") if s["name"].count("/") == 1]
        body = page(stores, "fileSearchStores", default_size=10, max_size=20)
        return jsonify(body) if body is not None else caller.error(400, "Invalid page token.")

    @app.route("/<version>/fileSearchStores/<store_id>", methods=["GET", "POST", "DELETE"])
    def one_store(version, store_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        store_id, _, verb = store_id.partition(":")
        name = f"fileSearchStores/{store_id}"
        store = state.owned(name, key)
        if store is None:
            return denied(name)
        if request.method == "POST":
            if verb != "importFile":
                return caller.error(404, f"Unknown path {request.path}.")
            body = request.get_json(force=True, silent=True)
            body = body if isinstance(body, dict) else {}
            file_name = field(body, "fileName", "file_name")
            file_name = file_name if isinstance(file_name, str) else ""
            data = file_bytes(state, file_name, key)
            file = state.owned(file_name, key)
            if data is None:  # the file must be the same project's as the store
                return caller.error(403, f"You do not have permission to access the File {file_name} or it may "
                                         "not exist.")
            return jsonify(operation(key, name, file["displayName"] or file_name, file["mimeType"], data,
                                     field(body, "customMetadata", "custom_metadata"), False))
        if request.method == "DELETE":
            documents = state.owned_by(key, name + "/")
            if any(d.get("state") for d in documents) and request.args.get("force") not in ("true", "True", "1"):
                return caller.error(400, f"FileSearchStore {name} is not empty; delete it with force=true.")
            for held in documents:
                state.forget(held["name"])
            state.forget(name)
            return jsonify({})
        return jsonify(store_view(store, key))

    @app.post("/upload/<version>/fileSearchStores/<store_id>:uploadToFileSearchStore")
    def upload_to_store(version, store_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        name = f"fileSearchStores/{store_id}"
        if state.owned(name, key) is None:
            return denied(name)
        body = json_object()
        metadata = field(body, "customMetadata", "custom_metadata")

        def finish(session):
            return operation(session["key"], name, session["display_name"], session["mime_type"],
                             session["data"], metadata, True)

        return start_upload(state, key, version, field(body, "displayName", "display_name"),
                            field(body, "mimeType", "mime_type"), finish=finish)

    @app.get("/<version>/fileSearchStores/<store_id>/operations/<operation_id>")
    @app.get("/<version>/fileSearchStores/<store_id>/upload/operations/<operation_id>")
    def store_operation(version, store_id, operation_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        name = request.path.split("/", 2)[2]
        held = state.owned(name, key)
        if held is None:
            return caller.error(404, "Requested entity was not found.")
        if held["document"] is None and state.poll(name) >= max(1, int(state.operation_polls_to_finish)):
            created = stamp(now())
            document = f"{held['store']}/documents/{new_id()}"
            state.keep(document, key, {
                "name": document, "displayName": held["displayName"], "customMetadata": held["customMetadata"],
                "createTime": created, "updateTime": created, "state": "STATE_ACTIVE",
                "sizeBytes": str(len(held["data"])), "mimeType": held["mimeType"]})
            held["document"] = document
        if held["document"] is None:
            return jsonify({"name": name})
        return jsonify({"name": name, "done": True, "response": {
            "@type": _TYPES + held["type"], "parent": held["store"], "documentName": held["document"]}})

    @app.get("/<version>/fileSearchStores/<store_id>/documents")
    def list_documents(version, store_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        store = f"fileSearchStores/{store_id}"
        if state.owned(store, key) is None:
            return denied(store)
        body = page(state.owned_by(key, store + "/documents/"), "documents", default_size=10, max_size=20)
        return jsonify(body) if body is not None else caller.error(400, "Invalid page token.")

    @app.route("/<version>/fileSearchStores/<store_id>/documents/<document_id>", methods=["GET", "DELETE"])
    def one_document(version, store_id, document_id):
        key, refusal = caller.check(version)
        if refusal is not None:
            return refusal
        name = f"fileSearchStores/{store_id}/documents/{document_id}"
        document = state.owned(name, key)
        if document is None:
            return caller.error(403, f"You do not have permission to access the Document {name} or it may "
                                     "not exist.")
        if request.method == "DELETE":
            state.forget(name)
            return jsonify({})
        return jsonify(document)
