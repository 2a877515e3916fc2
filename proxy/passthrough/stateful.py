"""Stateful calls through the server's pool: each resource goes to the key that made it, for its client only.

Before a call goes on, what it names (in its path and body) is looked up: another client's resource, or
one the proxy never saw made, is a 404; a resource on a key that has left the pool, a 409; the call is
pinned to the key that holds what it names, and a conversation (thought signatures, an earlier
interaction) never changes key or model half-way. After a successful answer, what it made is recorded
for the caller, a deletion is noted, and a list shows only the caller's own."""
import base64
import binascii
import json
from dataclasses import replace

from ..access.batch_budgets import BATCH_ACTIONS, batch_created
from ..analytics.batch_usage import count_answer
from ..errors import InvalidRequest, ResourceKeyGone, ResourceNotFound, ResourcesApart
from ..wire import references, routes
from ..wire.references import BadReference
from .keys import SERVER

MAX_ANSWER_BYTES = 16 * 1024 * 1024  # an answer read whole to learn what it made, or to filter a list
_PAGE_TOKEN = "pageToken"
BATCHES = "batches/"


def client_id_of(state):
    return state.client.id if state.client is not None else None


def pin(call, state, owners, pool):
    """Pin a server-key call to the key holding what it names, after checking the caller owns it all."""
    if call.key.source != SERVER or call.key.pinned:
        return
    own = references.path_resource(call.route)
    try:
        named = references.body_references(call.payload) if call.payload is not None else references.Named()
    except BadReference as exc:
        raise InvalidRequest(str(exc)) from None
    wanted = ([own] if own else []) + list(named.resources)
    if not wanted and not named.signatures:
        return
    candidates = {name: references.owners_of(name) for name in wanted}
    found = owners.find([each for names in candidates.values() for each in names] + list(named.signatures))
    client_id = client_id_of(state)
    keys = []
    for name, names in candidates.items():
        owner = next((found[each] for each in names if each in found), None)
        if owner is None or not owner.belongs_to(client_id):
            raise ResourceNotFound(f"{name} was not found.")
        keys.append(owner.key_id)
    # A signature the proxy saw produced on one of its keys keeps the conversation there; one it never
    # saw (made on the client's own key, or before this version) does not bind.
    keys += [found[digest].key_id for digest in named.signatures if digest in found
             and found[digest].belongs_to(client_id)]
    if named.signatures or any(name.startswith("interactions/") for name in named.resources):
        call.conversation = True  # no fallback to another model in the middle of one
    if not keys:
        return
    if len(set(keys)) > 1:
        raise ResourcesApart("The resources this call names were made on different server keys, so no one "
                             "key can reach them all; make them again together.")
    if pool.key_with_id(keys[0]) is None:
        raise ResourceKeyGone(f"{wanted[0] if wanted else 'This conversation'} was made with a server key "
                              "the proxy no longer holds; make it again.")
    call.key = replace(call.key, pinned=keys[0])


def reads_answer(call, reply):
    """Whether the answer is read whole before it goes on: what it made, or what a list must hide."""
    if call.key.source != SERVER or reply.live is None or reply.status >= 300 or call.streaming:
        return False
    if call.method == "POST" and not call.route.generation and call.action not in ("countTokens", "embedContent",
                                                                                   "batchEmbedContents"):
        return True
    route = call.route
    if call.method == "DELETE" or route.prefix == routes.DOWNLOAD:  # a file's bytes name nothing
        return False
    return call.method == "GET" and (references.listing(route, "GET") is not None
                                     or references.path_resource(route) is not None)


def read_whole(reply):
    """(body, whole): the live answer read into memory up to the bound; `whole` False when the answer
    is longer, and the rest is still to be read from the reply."""
    live, chunks, size = reply.live, [], 0
    reader = live.read_chunked(decode_content=False) if live.chunked else live.stream(64 * 1024, decode_content=False)
    try:
        for chunk in reader:
            chunks.append(chunk)
            size += len(chunk)
            if size > MAX_ANSWER_BYTES:
                return b"".join(chunks), False
        live.release_conn()
    except Exception:
        live.close()
        raise
    return b"".join(chunks), True


def _json(body):
    try:
        return json.loads(body) if body else None
    except ValueError:
        return None


def after(call, reply, body, state, owners):
    """Record what a successful answer made or handed out; note a deletion."""
    if call.key.source != SERVER or reply.status >= 300:
        return
    if call.method == "DELETE":
        named = references.path_resource(call.route)
        if named:
            owners.deleted(named)
        return
    answer = _json(body) if body is not None else None
    if answer is None:
        return
    client_id = upload_client = client_id_of(state)
    key_id = reply.key_id
    if state.upload is not None:
        upload_client = state.upload.client.id if state.upload.client is not None else None
    names = references.created(call.route, answer) if call.method == "POST" else references.handed_out(answer)
    if names and key_id:
        owners.record(names, key_id, upload_client if state.upload is not None else client_id, call.model)
        if call.method == "POST" and call.action in BATCH_ACTIONS:
            batch_created(names)  # its estimated cost counts against its budgets until its usage does
    if call.method == "GET":
        named = references.path_resource(call.route)
        if named and named.startswith(BATCHES) and reply.key:
            count_answer(named, answer, reply.key)  # counted once, whoever sees it finished first


def record_signatures(scanner, reply, state, owners, model):
    """Remember which key produced each thought signature of an answer, for the conversation's next turn."""
    digests = scanner.digests() if scanner is not None else []
    if digests and reply is not None and reply.key_id:
        owners.record(digests, reply.key_id, client_id_of(state), model)


# Lists: a client's resources may lie on several keys; the pages go through them key by key, and the page
# token says which key and which of its pages comes next.

def _encode_token(key_id, token):
    raw = json.dumps({"k": key_id, "t": token}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_token(text, keys):
    if not text:
        return (keys[0] if keys else None), ""
    try:
        value = json.loads(base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)))
        key_id, token = value["k"], value["t"]
    except (ValueError, KeyError, TypeError, binascii.Error):
        raise InvalidRequest("The pageToken is not one this proxy gave out.") from None
    if not isinstance(key_id, str) or not isinstance(token, str) or key_id not in keys:
        raise InvalidRequest("The pageToken is not one this proxy gave out.")
    return key_id, token


def list_page(call, state, owners, open_call):
    """(status, answer dict, reply) for a list call: the caller's own resources, page by page over the keys
    that hold them. `open_call(call)` sends a call upstream and returns its reply."""
    parent, collection = references.listing(call.route, call.method)
    client_id = client_id_of(state)
    if parent is not None:
        owner = next((o for o in owners.find(references.owners_of(parent)).values()), None)
        if owner is None or not owner.belongs_to(client_id):
            raise ResourceNotFound(f"{parent} was not found.")
        # What is under a resource of the caller's is the caller's too (a store's documents, made by its
        # operations, which the proxy never sees by name): the list goes, whole and unfiltered, to its key.
        return 0, None, open_call(replace(call, key=replace(call.key, pinned=owner.key_id)))
    keys = owners.keys_holding(client_id, collection, parent)
    key_id, token = _decode_token(call.query.get(_PAGE_TOKEN), keys)
    if key_id is None:
        return 200, {}, None
    while True:
        query = call.query.without(_PAGE_TOKEN)
        if token:
            query = query.with_pair(_PAGE_TOKEN, token)
        reply = open_call(replace(call, query=query, key=replace(call.key, pinned=key_id)))
        if reply.status >= 300 or reply.live is None:
            return reply.status, None, reply
        body, whole = read_whole(reply)
        answer = _json(body) if whole else None
        if not isinstance(answer, dict):
            reply.body = body
            if whole:
                reply.live = None
            return reply.status, None, reply
        page = _own_items(answer, collection, client_id, owners)
        next_token = answer.pop("nextPageToken", None)
        position = keys.index(key_id)
        if next_token:
            answer["nextPageToken"] = _encode_token(key_id, next_token)
        elif position + 1 < len(keys):
            answer["nextPageToken"] = _encode_token(keys[position + 1], "")
        if page or "nextPageToken" not in answer:
            return 200, answer, reply
        key_id, token = _decode_token(answer.pop("nextPageToken"), keys)  # an empty page: go on at once


def _own_items(answer, collection, client_id, owners):
    """Keep only the caller's items in each listed field; return how many are left."""
    left = 0
    for field, items in references.listed_items(answer):
        names = [references.item_name(item, collection) for item in items]
        found = owners.find(names)
        kept = [item for item, name in zip(items, names) if name in found and found[name].belongs_to(client_id)]
        if kept:
            answer[field] = kept
        else:
            del answer[field]
        left += len(kept)
    return left
