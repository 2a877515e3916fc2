"""Which Gemini key a native call uses: the client's own, or one from the server's pool."""
from dataclasses import dataclass
from typing import Optional

CLIENT, SERVER = "client", "server"


@dataclass(frozen=True)
class KeyChoice:
    source: str  # client | server
    key: Optional[str] = None  # the client's key; server keys are drawn per attempt
    where: Optional[str] = None  # header | query | bearer: how the client sent it, and how it is sent on
    pinned: Optional[str] = None  # the fingerprint of the server key an upload was begun with, and goes on with


def choose_key(request):
    """The client's key as it sent it; none (or an empty one, as the Gemini CLI sends) means the pool's."""
    header = request.headers.get("x-goog-api-key", "").strip()
    if header:
        return KeyChoice(CLIENT, header, "header")
    query = request.args.get("key", "").strip()
    if query:
        return KeyChoice(CLIENT, query, "query")
    auth = request.headers.get("Authorization", "")
    if auth[:7].lower() == "bearer " and auth[7:].strip():
        return KeyChoice(CLIENT, auth[7:].strip(), "bearer")
    return KeyChoice(SERVER)


def auth_headers(choice, server_key=None):
    """The headers that carry the key upstream (a query key stays in the query)."""
    if choice.source == SERVER:
        return {"x-goog-api-key": server_key}
    if choice.where == "header":
        return {"x-goog-api-key": choice.key}
    if choice.where == "bearer":
        return {"Authorization": f"Bearer {choice.key}"}
    return {}
