"""A deployment of several proxy instances on one machine, each as if on a host of its own, behind the
repo's nginx, on one PostgreSQL and one Redis: the processes, and how to start, kill and restart them.

On a networked database a worker keeps its host files (spool, in-flight notes, the client-change
marker, the cool-down and quota fallbacks, Live sessions) in Flask's instance folder, which is
`instance/` beside app.py. Two instances run from one checkout would share it, and prove sharing
through the host rather than through PostgreSQL and Redis. So each instance runs from a folder of its
own holding links to the code: its instance folder is that folder's `instance/`, as on its own host."""
import os
import signal

from tests import processes

# What Gunicorn imports (gunicorn.conf.py, wsgi:app and what that imports): no .env, no instance/.
CODE = ("app.py", "config.py", "models.py", "wsgi.py", "gunicorn.conf.py", "proxy")


class Instance:
    """One Gunicorn (its master and gevent workers) on a fixed port, from a host folder of its own, that a
    test can kill (SIGKILL to every process) and start again on the same folder and port."""

    def __init__(self, name, folder, port, settings):
        self.name, self.folder, self.port, self.settings = name, folder, port, dict(settings)
        self.url = f"http://127.0.0.1:{port}"
        self.workers = int(self.settings.pop("WEB_CONCURRENCY", 2))
        self.process, self.logs = None, []
        os.makedirs(folder, exist_ok=True)
        for entry in CODE:
            os.symlink(os.path.join(processes.ROOT, entry), os.path.join(folder, entry))

    @property
    def instance_path(self):
        return os.path.join(self.folder, "instance")

    def launch(self):
        """Start Gunicorn; wait_ready() waits for its workers."""
        log = os.path.join(self.folder, f"gunicorn-{len(self.logs)}.log")
        self.logs.append(log)
        env = processes.base_env(PORT=self.port, WEB_CONCURRENCY=self.workers,
                                 PROMETHEUS_MULTIPROC_DIR=os.path.join(self.folder, "metrics"), **self.settings)
        argv = [os.path.join(processes.BIN, "gunicorn"), "--pythonpath", self.folder, "-c",
                os.path.join(self.folder, "gunicorn.conf.py"), "wsgi:app"]
        self.process = processes.Process(self.name, argv, env, self.folder, f"{self.url}/health", log)
        return self

    def wait_ready(self, timeout=60.0):
        self.process.wait_ready(timeout, log_marker="Worker ready", count=self.workers)
        return self

    def kill(self):
        """SIGKILL to the master and its workers at once (one process group), as a machine that dies."""
        os.killpg(self.process.proc.pid, signal.SIGKILL)
        self.process.proc.wait(30)
        self.process.stop()  # closes its log

    def stop(self):
        if self.process is not None:
            self.process.stop()

    def output(self):
        """Every run's log, in order."""
        text = []
        for log in self.logs:
            with open(log, "rb") as handle:
                text.append(handle.read().decode(errors="replace"))
        return "".join(text)

    def served(self, request_ids):
        """Which of `request_ids` this instance's access log has answered."""
        output = self.output()
        return {rid for rid in request_ids if f"rid={rid}" in output}


class Deployment:
    """Instances sharing `settings`, each its own host folder under `folder`, and nginx over all of them."""

    def __init__(self, folder, settings, count=2):
        self.folder = folder
        self.instances = [Instance(f"instance-{chr(97 + n)}", os.path.join(folder, f"host-{chr(97 + n)}"),
                                   processes.free_port(), settings) for n in range(count)]
        self.nginx = None

    def start(self):
        # All at once: their first workers race to migrate the empty database (an advisory lock decides).
        for instance in self.instances:
            instance.launch()
        for instance in self.instances:
            instance.wait_ready()
        self.nginx = processes.start_nginx(self.folder, [instance.port for instance in self.instances])
        return self

    @property
    def url(self):
        return self.nginx.url

    def stop(self):
        if self.nginx is not None:
            self.nginx.stop()
        for instance in self.instances:
            instance.stop()
