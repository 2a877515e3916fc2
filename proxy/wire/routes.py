"""A native request's path parsed once into what Gemini's API has: version, resources, action.

Everything upstream is built from the parsed parts, never from the client's bytes, so a path that
would mean something else to another parser (dot segments in any encoding, encoded slashes or
backslashes, control characters, empty segments) cannot reach another resource or model."""
import re
from dataclasses import dataclass
from functools import cached_property
from typing import Optional
from urllib.parse import unquote_to_bytes

UPLOAD = "upload/"
DOWNLOAD = "download/"  # files' bytes, batch results and generated video: files/{id}:download?alt=media
PREFIXES = (UPLOAD, DOWNLOAD)
VERSIONS = ("v1beta", "v1", "v1alpha")  # v1alpha: ephemeral tokens and what Google previews there
# Resource collections of Gemini's REST API, at any depth (models/{m}/operations/{op}, ...).
COLLECTIONS = frozenset({
    "models", "tunedModels", "files", "cachedContents", "batches", "operations", "fileSearchStores",
    "documents", "chunks", "corpora", "permissions", "generatedFiles", "interactions",
    "auth_tokens",  # v1alpha: ephemeral tokens for the Live API
})
OPENAI = "openai"  # Gemini's OpenAI-compatible endpoint: openai/chat/completions, openai/models/{m}, ...
GENERATION_ACTIONS = frozenset({"generateContent", "streamGenerateContent"})
MAX_NAME = 128  # characters in one resource name; Gemini's are far shorter

# A resource name: what Gemini's names are made of, never starting with a dot (so never . or ..).
NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,%d}" % (MAX_NAME - 1))
_ACTION = re.compile(r"[A-Za-z][A-Za-z0-9]{0,63}")
_OPENAI_WORD = re.compile(r"[a-z][a-z_]{0,31}")
_VERB_AFTER_NAME = frozenset({"cancel"})  # interactions/{id}/cancel
# Collections named in two words: an upload's operation is fileSearchStores/{s}/upload/operations/{o}.
_TWO_WORD_COLLECTIONS = frozenset({"upload/operations"})


class BadRoute(ValueError):
    """The path is not one of Gemini's; `status` is 400 for a malformed one, 404 for an unknown one."""

    def __init__(self, message, status=404):
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Route:
    prefix: str  # "", "upload/" (the Files API's uploads) or "download/" (files' bytes)
    version: str
    segments: tuple  # decoded and checked, e.g. ("models", "gemini-2.5-flash")
    action: Optional[str] = None  # after the colon, e.g. "generateContent"

    @property
    def upload(self):
        return self.prefix == UPLOAD

    @property
    def collection(self):
        return self.segments[0]

    @cached_property  # a Route is immutable, and parse hands the same one to every request for its path
    def openai(self):
        return self.collection == OPENAI

    @cached_property
    def model(self):
        """The model the path names (models/{m} or tunedModels/{m}), as ALLOWED_MODELS sees it."""
        if len(self.segments) == 2 and self.collection == "models":
            return self.segments[1]
        if len(self.segments) == 2 and self.collection == "tunedModels":
            return "tunedModels/" + self.segments[1]
        return None

    @cached_property
    def generation(self):
        return self.action in GENERATION_ACTIONS and self.collection == "models"

    def path(self, model=None):
        """The path after the version, with `model` in place of the path's own where given."""
        segments = self.segments
        if model is not None and self.collection == "models" and len(segments) == 2:
            segments = ("models", model)
        return "/".join(segments) + (f":{self.action}" if self.action else "")

    def upstream(self, model=None):
        """The path to send upstream: every part checked, so none needs quoting."""
        return f"/{self.prefix}{self.version}/{self.path(model)}"

    @cached_property
    def template(self):
        """The route analytics group by: resource names replaced by placeholders."""
        if self.openai:
            words = self.segments[:2] if self.segments[1:2] == ("models",) else self.segments
            return f"/{self.prefix}{self.version}/" + "/".join(words)
        parts = [word if i % 2 == 0 else "{" + _singular(self.segments[i - 1]) + "}"
                 for i, word in enumerate(self.segments)]
        return f"/{self.prefix}{self.version}/" + "/".join(parts) + (f":{self.action}" if self.action else "")


def _singular(collection):
    return "model" if collection in ("models", "tunedModels") else "name"


def raw_path(environ):
    """The request target's path as the client sent it, before any decoding, without the mount prefix."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if not raw:
        return None
    raw = raw.partition("?")[0].partition("#")[0]
    if "://" in raw:  # absolute-form: http://host/path
        raw = "/" + raw.split("://", 1)[1].partition("/")[2]
    script = environ.get("SCRIPT_NAME", "")
    if script and raw.startswith(script):
        raw = raw[len(script):]
    return raw


def _decoded(segment):
    """One raw segment, percent-decoded once; what it decodes to is checked by the caller."""
    if "%" in segment and not re.fullmatch(r"(?:[^%]|%[0-9A-Fa-f]{2})*", segment):
        raise BadRoute("The path holds a malformed percent-escape.", 400)
    try:
        return unquote_to_bytes(segment).decode("utf-8")
    except UnicodeDecodeError:
        raise BadRoute("The path is not valid UTF-8.", 400) from None


def _name(text):
    if not NAME.fullmatch(text):
        raise BadRoute(f"{_shown(text)} is not a resource name of Gemini's API.", 400)
    return text


def _shown(text):
    """A client's text, safe to quote in an error message."""
    return "\"" + text[:40].encode("unicode_escape").decode("ascii") + "\""


_KNOWN_MAX = 4096  # paths remembered parsed; names in paths are without end, so it starts over when full
_parsed = {}  # raw path: its Route (immutable, so shared by every request for that path)


def parse(raw):
    """The Route of a raw path such as /v1beta/models/gemini-2.5-flash:generateContent; BadRoute if none."""
    route = _parsed.get(raw)
    if route is None:
        route = _parse(raw)
        if len(_parsed) >= _KNOWN_MAX:
            _parsed.clear()
        _parsed[raw] = route
    return route


def _parse(raw):
    if not raw or not raw.startswith("/"):
        raise BadRoute("The path is not one of Gemini's API.")
    rest = raw[1:]
    prefix = next((each for each in PREFIXES if rest.startswith(each)), "")
    rest = rest[len(prefix):]
    version, _, rest = rest.partition("/")
    if version not in VERSIONS:
        raise BadRoute("The path is not one of Gemini's API.")
    words = [_decoded(segment) for segment in rest.split("/")]
    action = None
    last, colon, tail = words[-1].partition(":")
    if colon:
        if not _ACTION.fullmatch(tail):
            raise BadRoute(f"{_shown(tail)} is not a method of Gemini's API.", 400)
        words[-1], action = last, tail
    if words[0] == OPENAI:
        return _openai(prefix, version, words, action)
    words, joined = _joined_collections(words)
    for position, word in enumerate(words):
        if position % 2 == 0 and word not in COLLECTIONS and position not in joined and not (
                position > 0 and word in _VERB_AFTER_NAME and position == len(words) - 1):
            raise BadRoute(f"{_shown(word)} is not a resource of Gemini's API.")
        if position % 2 == 1:
            _name(word)
    return Route(prefix, version, tuple(words), action)


def _joined_collections(words):
    """The words with each two-word collection after a name made one, so that collections and names
    alternate, and the positions of those. (A client's encoded slash joins nothing: it is refused later.)"""
    result, joined = [], set()
    for word in words:
        pair = f"{result[-1]}/{word}" if result else None
        if len(result) % 2 == 1 and len(result) > 1 and pair in _TWO_WORD_COLLECTIONS:
            result[-1] = pair
            joined.add(len(result) - 1)
        else:
            result.append(word)
    return result, joined


def name_parts(name):
    """A resource name's collections and names, alternating: "fileSearchStores/s/upload/operations/o" is
    ["fileSearchStores", "s", "upload/operations", "o"]."""
    return _joined_collections(name.split("/"))[0]


def _openai(prefix, version, words, action):
    if prefix or action or not 2 <= len(words) <= 4:
        raise BadRoute("The path is not one of Gemini's OpenAI-compatible API.")
    for position, word in enumerate(words[1:], start=1):
        if position == 2 and words[1] == "models":
            _name(word)  # openai/models/{model}
        elif not _OPENAI_WORD.fullmatch(word):
            raise BadRoute(f"{_shown(word)} is not a resource of Gemini's OpenAI-compatible API.")
    return Route(prefix, version, tuple(words), None)


def valid_model_name(name):
    """Whether a model named in a body (OpenAI's `model`, an interaction's) can be a Gemini model."""
    if not isinstance(name, str):
        return False
    bare = name.removeprefix("models/")
    return bool(NAME.fullmatch(bare)) or (bare.startswith("tunedModels/") and bool(NAME.fullmatch(bare[12:])))
