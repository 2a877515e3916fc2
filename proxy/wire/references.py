"""Gemini's stateful resources as a native call names them: in its path, in its body, in the answer.

Google keeps each resource (a file, a cache, a batch, an operation, a store, an interaction, a tuned
model) in the project of the key that made it. These are the names the proxy must send to that key,
read from the parsed Route and the parsed JSON body, never from the client's bytes."""
import base64
import hashlib
import re
from dataclasses import dataclass

from .routes import NAME, name_parts

# Collections whose members live in one key's project.
STATEFUL = frozenset({"files", "cachedContents", "batches", "operations", "fileSearchStores", "interactions",
                      "tunedModels", "generatedFiles", "auth_tokens"})
TOKENS = "auth_tokens"  # the Live API's ephemeral tokens: credentials, so the proxy keeps only their digests
SIGNATURES = "thoughtSignatures"  # not Google's: where the proxy keeps which key produced a thought signature
MAX_WALK = 20_000  # JSON values looked at in one body or answer; the body is bounded already

# Body fields that name a resource: a cache, a file (by name or URI), a batch's input file, a store,
# an earlier interaction; proto and JSON spellings alike, as Google's parser takes either.
_CACHE_FIELDS = ("cachedContent", "cached_content")
_FILE_FIELDS = ("fileName", "file_name", "responsesFile", "responses_file")
_URI_FIELDS = ("fileUri", "file_uri")
_STORE_FIELDS = ("fileSearchStoreNames", "file_search_store_names")
_INTERACTION_FIELDS = ("previous_interaction_id", "previousInteractionId")
_SIGNATURE_FIELDS = frozenset({"thoughtSignature", "thought_signature"})
_FIELDS = {**{f: "cachedContents" for f in _CACHE_FIELDS}, **{f: "files" for f in _FILE_FIELDS},
           **{f: "uri" for f in _URI_FIELDS}, **{f: "fileSearchStores" for f in _STORE_FIELDS},
           **{f: "interactions" for f in _INTERACTION_FIELDS}}
# A Gemini file's URI: https://generativelanguage.googleapis.com/v1beta/files/abc (or the proxy's host).
_FILE_URI = re.compile(r"[a-z][a-z0-9+.-]*://[^/?#]+/(?:upload/|download/)?v1(?:beta|alpha)?/(files/[^/?#:]+)")


class BadReference(ValueError):
    """A body field that names a resource holds something that is not a resource name."""


@dataclass(frozen=True)
class Named:
    """What a call names: resources (each resolved to its owner) and thought signatures (by digest)."""

    resources: tuple = ()
    signatures: tuple = ()

    def __bool__(self):
        return bool(self.resources or self.signatures)


def path_resource(route):
    """The resource the path names ("cachedContents/abc", "fileSearchStores/s/documents/d",
    "models/veo/operations/op", "tunedModels/t"), or None for a path that names none."""
    segments = route.segments
    if route.openai or len(segments) < 2:
        return None
    if segments[0] == "models":
        return "/".join(segments[:4]) if len(segments) >= 4 and segments[2] == "operations" else None
    if segments[0] not in STATEFUL:
        return None
    named = segments[:len(segments) - len(segments) % 2]  # interactions/{id}/cancel names interactions/{id}
    return "/".join(named)


def owners_of(name):
    """The names that may hold `name`'s owner, most specific first: a store's document belongs to
    whoever owns the store, an operation under a tuned model to the model's owner."""
    parts = name_parts(name)
    return ["/".join(parts[:end]) for end in range(len(parts), 1, -2) if parts[0] != "models" or end >= 4]


def listing(route, method):
    """(parent, collection) for a list call of stateful resources (GET files, GET
    fileSearchStores/s/documents), else None."""
    segments = route.segments
    if method != "GET" or route.openai or route.action or len(segments) % 2 == 0:
        return None
    collection = segments[-1]
    if len(segments) == 1 and collection in STATEFUL:
        return None, collection
    if len(segments) >= 3 and (collection in STATEFUL or collection == "documents") and \
            (segments[0] in STATEFUL or (segments[0] == "models" and collection == "operations")):
        return "/".join(segments[:-1]), collection
    return None


def _walk(value, visit, budget):
    """Call visit(field, value) for every member of every object, depth first, within `budget` values."""
    stack = [value]
    while stack:
        budget -= 1
        if budget < 0:
            return
        item = stack.pop()
        if isinstance(item, dict):
            for key, inner in item.items():
                visit(key, inner)
                if isinstance(inner, (dict, list)):
                    stack.append(inner)
        elif isinstance(item, list):
            stack.extend(inner for inner in item if isinstance(inner, (dict, list)))


def _resource_name(kind, text):
    """A field's value as a resource name of `kind`, or BadReference."""
    if not isinstance(text, str):
        raise BadReference(f"A {kind} reference must be a string.")
    bare = text.removeprefix(kind + "/")
    if not NAME.fullmatch(bare):
        raise BadReference(f"\"{text[:60]}\" is not a name of Gemini's {kind}.")
    return f"{kind}/{bare}"


def token_resource(token):
    """The name an ephemeral token (auth_tokens/...) is kept under as its client's resource: a digest."""
    return TOKENS + "/" + hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()[:48]


# An ephemeral token wherever it is written (an answer minting one): kept out of stored bodies.
TOKEN_TEXT = re.compile(rb"auth_tokens/[A-Za-z0-9_-]{8,}")


def signature_digest(signature):
    """The name under which the proxy remembers which key produced a thought signature. A signature is
    proto3 JSON `bytes`: base64 in either alphabet, padded or not (Gemini sends the standard one, google-genai
    sends it back URL-safe), so the digest is of the bytes it holds; of the text when it is not base64."""
    text = signature.strip().replace("-", "+").replace("_", "/").rstrip("=")
    try:
        held = base64.b64decode(text + "=" * (-len(text) % 4), validate=True)
    except ValueError:
        held = signature.encode("utf-8", "surrogatepass")
    return SIGNATURES + "/" + hashlib.sha256(held).hexdigest()[:48]


def body_references(payload):
    """What a JSON request body names; BadReference for a named field that is not a name."""
    if not isinstance(payload, (dict, list)):
        return Named()
    resources, signatures, problems = [], [], []

    def visit(field, value):
        if field in _SIGNATURE_FIELDS and isinstance(value, str) and value:
            signatures.append(signature_digest(value))
            return
        kind = _FIELDS.get(field)
        if kind is None:
            return
        try:
            if kind == "uri":
                found = _FILE_URI.match(value) if isinstance(value, str) else None
                if found:
                    resources.append(_resource_name("files", found.group(1)))
                elif isinstance(value, str) and value.startswith("files/"):
                    resources.append(_resource_name("files", value))
                return  # any other URI (YouTube, gs://, https://...) is not a resource of a project
            values = value if isinstance(value, list) and kind == "fileSearchStores" else [value]
            resources.extend(_resource_name(kind, each) for each in values)
        except BadReference as exc:
            problems.append(exc)

    _walk(payload, visit, MAX_WALK)
    if problems:
        raise problems[0]
    return Named(tuple(dict.fromkeys(resources)), tuple(dict.fromkeys(signatures)))


def _stateful_name(text):
    if not isinstance(text, str):
        return None
    parts = name_parts(text)
    if len(parts) < 2 or len(parts) % 2 or not all(NAME.fullmatch(part) for part in parts[1::2]):
        return None
    if parts[0] == "models":
        return text if len(parts) >= 4 and parts[2] == "operations" else None
    return text if parts[0] in STATEFUL else None


def created(route, answer):
    """The resources a successful answer to a POST made or handed out: its own name (a cache, a batch's
    operation, a store, a tuned model's operation), an uploaded file, an interaction's id, and the files
    it points at (a batch's results, a generated video)."""
    if not isinstance(answer, dict):
        return []
    names = []
    own = _stateful_name(answer.get("name"))
    if own and own.startswith(TOKENS + "/"):
        own = token_resource(own)  # a bearer credential: kept by its digest, never as it is
    if own:
        names.append(own)
    if route.collection == "interactions" and isinstance(answer.get("id"), str) and NAME.fullmatch(answer["id"]):
        names.append("interactions/" + answer["id"])
    upload = answer.get("file")
    if isinstance(upload, dict) and _stateful_name(upload.get("name")):
        names.append(upload["name"])
    for item in answer.get("files") or () if isinstance(answer.get("files"), list) else ():
        if isinstance(item, dict) and _stateful_name(item.get("name")):
            names.append(item["name"])
    names.extend(handed_out(answer))
    return list(dict.fromkeys(names))


def handed_out(answer):
    """Files and tuned models an answer points at: they live where the answer's resource lives."""
    names = []

    def visit(field, value):
        if field in ("responsesFile", "responses_file", "tunedModel", "tuned_model") and _stateful_name(value):
            names.append(value)
        elif field in ("uri", "fileUri", "file_uri", "videoUri") and isinstance(value, str):
            found = _FILE_URI.match(value)
            if found and _stateful_name(found.group(1)):
                names.append(found.group(1))

    _walk(answer, visit, MAX_WALK)
    return names


def listed_items(answer):
    """(field, items) of each top-level list of named resources in a list call's answer."""
    if not isinstance(answer, dict):
        return []
    return [(field, value) for field, value in answer.items() if isinstance(value, list) and value
            and all(isinstance(item, dict) and isinstance(item.get("name") or item.get("id"), str) for item in value)]


def item_name(item, collection):
    """A listed item's resource name (interactions list their id)."""
    name = item.get("name")
    if isinstance(name, str) and "/" in name:
        return name
    ident = item.get("id") if name is None else name
    return f"{collection}/{ident}"


_SIGNATURE_IN_JSON = re.compile(rb'"thought_?[sS]ignature"\s*:\s*"((?:[^"\\]|\\/)*)"')
_MAX_SIGNATURE = 1 << 20  # bytes of one signature looked for across chunks; Gemini's are a few KB


class SignatureScanner:
    """The thought signatures of an answer as it streams by, without parsing or holding the stream:
    a field split across two chunks is found all the same."""

    def __init__(self):
        self.tail = b""
        self.found = []

    def feed(self, chunk):
        data = self.tail + chunk if self.tail else chunk
        if b"ignature" not in data:
            self.tail = data[-24:]  # a field name cut by the chunk's end
            return
        end = 0
        for match in _SIGNATURE_IN_JSON.finditer(data):
            self.found.append(match.group(1).replace(b"\\/", b"/").decode("utf-8", "replace"))
            end = match.end()
        rest = data[end:]
        start = rest.rfind(b'"thought')
        self.tail = rest[start:] if start >= 0 else rest[-24:]
        if len(self.tail) > _MAX_SIGNATURE:
            self.tail = b""

    def digests(self):
        return list(dict.fromkeys(signature_digest(signature) for signature in self.found))
