"""The emulator's mutable behaviour (latency, faults) and what it has seen (stats, requests)."""
import collections
import random
import threading


class EmulatorState:
    def __init__(self, valid_keys=None, latency_ms=0.0):
        self.lock = threading.Lock()
        self.valid_keys = set(valid_keys or ())  # empty: any non-empty key is valid
        self.random = random.Random()
        self.default_latency_ms = latency_ms
        self.reset()

    def reset(self):
        with self.lock:
            self.latency_ms = self.default_latency_ms
            self.model_latency_ms = {}
            self.latency_jitter_ms = 0.0  # each answer's latency is drawn from latency ± jitter
            self.stream_chunk_delay_ms = 0.0
            self.stream_chunk_words = 4
            self.omit_usage = False
            self.faults = []
            self.in_flight = 0
            self.peak_in_flight = 0
            self.total = 0
            self.requests = collections.deque(maxlen=1000)
            self.received = collections.deque(maxlen=5000)  # every request as it arrived, known route or not
            self.uploads = {}  # upload id: a resumable upload under way
            # name: (the key that made it, the resource); Google scopes each resource to its key's project.
            self.resources = {}
            # key: its project's name. Keys of one project share its resources, as at Google; a key not
            # named here is a project of its own.
            self.projects = {}
            self.blobs = {}  # a file's name: its bytes, for :download
            self.polls = {}  # a resource's name: how often it has been read, which moves a batch or an operation on
            # Batches, operations and background interactions finish after this many reads, so tests need no sleep.
            self.batch_polls_to_finish = 2
            self.operation_polls_to_finish = 2
            self.interaction_polls_to_finish = 1

    def configure(self, settings):
        with self.lock:
            for name in ("latency_ms", "latency_jitter_ms", "stream_chunk_delay_ms", "stream_chunk_words",
                         "omit_usage", "model_latency_ms", "batch_polls_to_finish",
                         "operation_polls_to_finish", "interaction_polls_to_finish", "projects"):
                if name in settings:
                    setattr(self, name, settings[name])
            if "latency_seed" in settings:  # the same seed replays the same sequence of latencies
                self.random.seed(settings["latency_seed"])

    def add_fault(self, fault):
        """A fault: status (or mode), optional model/key/action to match, times (None: forever)."""
        fault = {"times": 1, **fault}
        with self.lock:
            self.faults.append(fault)

    def take_fault(self, model, key, action):
        with self.lock:
            for fault in self.faults:
                if fault.get("model") not in (None, model) or fault.get("key") not in (None, key):
                    continue
                if fault.get("action") not in (None, action):
                    continue
                if fault["times"] is not None:
                    fault["times"] -= 1
                    if fault["times"] <= 0:
                        self.faults.remove(fault)
                return dict(fault)
        return None

    def keep(self, name, key, resource):
        """Hold a resource (a cache, a batch, an operation, an interaction...) as the project of `key`'s."""
        with self.lock:
            self.resources[name] = (key, resource)

    def owned(self, name, key):
        """The resource of that name if `key`'s project made it, else None: another project's resource
        is invisible, as at Google (callers answer 403 or 404)."""
        with self.lock:
            held = self.resources.get(name)
            return held[1] if held is not None and self._same_project(held[0], key) else None

    def project_of(self, key):
        """The project `key` belongs to: the one `projects` names, else a project of its own."""
        with self.lock:
            return self.projects.get(key, key)

    def _same_project(self, owner, key):
        return owner == key or (owner in self.projects and self.projects[owner] == self.projects.get(key))

    def owned_by(self, key, prefix):
        """Every resource of `key`'s project whose name starts with `prefix` (e.g. "cachedContents/")."""
        with self.lock:
            return [resource for name, (owner, resource) in self.resources.items()
                    if self._same_project(owner, key) and name.startswith(prefix)]

    def forget(self, name):
        with self.lock:
            self.resources.pop(name, None)
            self.blobs.pop(name, None)
            self.polls.pop(name, None)

    def poll(self, name):
        """Count one more read of `name`; the count after it."""
        with self.lock:
            self.polls[name] = self.polls.get(name, 0) + 1
            return self.polls[name]

    def every(self):
        """(name, owning key, resource) of every resource held, oldest first."""
        with self.lock:
            return [(name, owner, resource) for name, (owner, resource) in self.resources.items()]

    def latency_for(self, model):
        latency = self.model_latency_ms.get(model, self.latency_ms)
        if self.latency_jitter_ms:
            latency = max(0.0, latency + self.random.uniform(-self.latency_jitter_ms, self.latency_jitter_ms))
        return latency / 1000.0

    def enter(self, record):
        with self.lock:
            self.in_flight += 1
            self.total += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
            self.requests.append(record)

    def leave(self):
        with self.lock:
            self.in_flight -= 1

    def stats(self):
        with self.lock:
            return {"in_flight": self.in_flight, "peak_in_flight": self.peak_in_flight, "total": self.total,
                    "faults_pending": len(self.faults)}
