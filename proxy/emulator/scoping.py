"""What a generation may name, as Google scopes it: a file (fileData.fileUri) and a File Search store
(tools[].fileSearch) must be the calling key's project's, else 403 PERMISSION_DENIED."""
import re

from flask import has_request_context, request

from .reading import Refused, field
from .stores import foreign_stores

_GOOGLE_HOST = "generativelanguage.googleapis.com"
_FILE_URI = re.compile(r"^(?:https?://(?P<host>[^/]+)/(?:v1beta|v1|v1alpha)/)?(?P<name>files/[A-Za-z0-9_-]+)$")


def _file_names(contents):
    for content in contents:
        for part in (content.get("parts") or []) if isinstance(content, dict) else []:
            data = field(part, "fileData", "file_data") if isinstance(part, dict) else None
            uri = field(data, "fileUri", "file_uri")
            match = _FILE_URI.match(uri) if isinstance(uri, str) else None
            if match and _gemini_host(match.group("host")):
                yield match.group("name")


def _gemini_host(host):
    """A file URL of Google's or of this emulator names a Files API file; any other URL (YouTube) does not."""
    if host is None or host == _GOOGLE_HOST:
        return True
    return has_request_context() and host == request.host


def check_references(state, body, key):
    """Refuse, as Google does, a generation that names another project's (or no) file or store."""
    contents = body.get("contents") or []
    for name in _file_names(contents if isinstance(contents, list) else [contents]):
        if state.owned(name, key) is None:
            raise Refused(403, f"You do not have permission to access the File {name.removeprefix('files/')} "
                               "or it may not exist.")
    for name in foreign_stores(state, body, key)[:1]:
        raise Refused(403, f"You do not have permission to access the FileSearchStore {name} or it may not exist.")
