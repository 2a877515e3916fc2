"""The models a call may name, and the ones it may fall back to: decided here for every API."""
from flask import has_request_context

from ..errors import ModelNotAllowed, ModelNotAllowedForKey
from ..requestctx import current as current_state

# Which models an entrance offers its callers (ModelChain.require_allowed's `among`).
ON_CHAIN = "chain"  # /gemini/generate: the server's keys, so only a model of the operator's chain
LISTED = "listed"  # /gemini-proxy with the caller's own key: ALLOWED_MODELS, or GEMINI_MODELS when that is empty
PERMITTED = "permitted"  # the pass-through: ALLOWED_MODELS, or any model of Gemini's when that is empty
ANY = "*"  # in a fallback scope: every model may fall back


def client_models():
    """The calling client key's own allowlist (access.clients.Caller.models); None: no narrower than the
    entrance's. Read from the request's state, so every entrance and every fallback sees the same one."""
    if not has_request_context():
        return None
    return getattr(current_state().client, "models", None)


class ModelChain:
    """The operator's chain (GEMINI_MODELS within ALLOWED_MODELS) and the allow-list behind it."""

    def __init__(self, models, allowed=()):
        self.allowed = list(allowed)
        self.listed = list(models)  # GEMINI_MODELS as configured
        self.models = [m for m in self.listed if not self.allowed or m in self.allowed]

    def require_allowed(self, model, among):
        """Refuse a model the entrance does not offer (ModelNotAllowed); None names no model and passes."""
        if model is None:
            return
        if among == ON_CHAIN:
            offered, verb = self.models, "allowed"
        elif among == LISTED:
            offered, verb = self.allowed or self.listed, "available"
        else:
            offered, verb = self.allowed, "allowed"
        if offered and model not in offered:
            raise ModelNotAllowed(f"Model {model!r} is not {verb} here; choose one of: {', '.join(offered)}.")
        own = client_models()
        if own is not None and model not in own:
            raise ModelNotAllowedForKey(f"Model {model!r} is not allowed for this API key; it may use: "
                                        f"{', '.join(own) or 'none'}.")

    def along(self, model, scope=(ANY,)):
        """`model` (or the default) first, then, when `scope` lets it fall back, the rest of the chain."""
        own = client_models()
        models = self.models if own is None else [m for m in self.models if m in own]
        if model is None and not models:
            raise ModelNotAllowedForKey("None of this proxy's models is allowed for this API key: name one of "
                                        f"{', '.join(own) or 'none'}.")
        first = model or models[0]
        if ANY not in scope and first not in scope:
            return [first]
        # Fallback never leaves the key's allowlist.
        return [first] + [m for m in models if m != first]
