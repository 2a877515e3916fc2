"""The cache as the APIs use it: decide, look up, and store only complete answers from the model asked."""
from .answers import COMPLETE
from .policy import cache_key, decide


class ResponseCache:
    def __init__(self, store, config):
        self.store, self.config = store, config

    def decision(self, headers, body):
        return decide(self.config, headers, body)

    def lookup(self, decision, model, body):
        """(key, cached answer or None); the key is None when the cache is not used at all."""
        if not decision.used:
            return None, None
        key = cache_key(model, body)
        return key, self.store.get(key) if decision.read else None

    def keep(self, decision, key, requested_model, answered_model, answer):
        """Store an answer, unless it came from a fallback model or is not a complete one."""
        if not decision.write or key is None or answer is None or answered_model != requested_model:
            return
        if answer["candidates"][0].get("finishReason") not in COMPLETE:
            return
        self.store.put(key, requested_model, answer)
