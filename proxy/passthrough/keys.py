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


def auth_headers(choice, server_key=None):
    """The headers that carry the key upstream (a query key stays in the query)."""
    if choice.source == SERVER:
        return {"x-goog-api-key": server_key}
    if choice.where == "header":
        return {"x-goog-api-key": choice.key}
    if choice.where == "bearer":
        return {"Authorization": f"Bearer {choice.key}"}
    return {}
