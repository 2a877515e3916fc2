"""Start and stop the real processes the end-to-end tests talk to."""
import glob
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

import requests

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def base_env(**extra):
    """A clean environment: nothing from the developer's shell or .env leaks into a server."""
    env = {"PATH": os.environ.get("PATH", ""), "PYTHONDONTWRITEBYTECODE": "1", "HOME": os.environ.get("HOME", "/tmp")}
    env.update({key: str(value) for key, value in extra.items()})
    return env


class Process:
    def __init__(self, name, argv, env, cwd, ready_url, log_path, verify=True):
        self.name, self.ready_url, self.log_path, self.verify = name, ready_url, log_path, verify
        self.log = open(log_path, "wb")
        self.proc = subprocess.Popen(argv, env=env, cwd=cwd, stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)

    def wait_ready(self, timeout=30.0, log_marker=None, count=1):
        """Wait until the URL answers and, if given, `log_marker` has appeared `count` times."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{self.output()}")
            if log_marker is None or self.output().count(log_marker) >= count:
                try:
                    requests.get(self.ready_url, timeout=timeout, verify=self.verify)
                    return self
                except requests.RequestException:
                    pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{self.name} not ready after {timeout} s:\n{self.output()}")

    def output(self):
        if not self.log.closed:
            self.log.flush()
        with open(self.log_path, "rb") as handle:
            return handle.read().decode(errors="replace")

    def stop(self, timeout=15.0):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                print(f"{self.name} ignored SIGTERM for {timeout} s:\n{self.output()[-3000:]}", flush=True)
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.log.close()


def refusal_of(process, timeout=60.0):
    """The output of a server that must refuse to start: it exits by itself, and not with 0."""
    try:
        process.proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise AssertionError(f"{process.name} kept running") from None
    finally:
        process.stop()
    assert process.proc.returncode != 0, f"{process.name} exited with 0"
    return process.output()


def workers_of(master_pid):
    """The pids of a Gunicorn master's workers."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(master_pid)], capture_output=True, text=True).stdout
    return sorted(int(pid) for pid in out.split())


def start_emulator(tmp_dir, keys, certfile=None, cafile=None):
    """The emulator; over HTTPS with `certfile` (chain and key, PEM), checked against `cafile`."""
    port = free_port()
    argv = [PYTHON, "-m", "proxy.emulator", "--port", str(port), "--keys", ",".join(keys)]
    if certfile:
        argv += ["--certfile", certfile, "--keyfile", certfile]
    scheme = "https" if certfile else "http"
    process = Process("emulator", argv, base_env(PYTHONPATH=ROOT), ROOT,
                      f"{scheme}://localhost:{port}/_emulator/stats", os.path.join(tmp_dir, f"emulator-{port}.log"),
                      verify=cafile or True)
    process.url, process.port = f"{scheme}://{'localhost' if certfile else '127.0.0.1'}:{port}", port
    return process.wait_ready()


def start_connect_proxy(tmp_dir, routes):
    """tests/connect_proxy.py: an HTTPS egress proxy tunnelling each "host:port" of `routes` to its
    "address:port"."""
    port = free_port()
    argv = [PYTHON, os.path.join(ROOT, "tests", "connect_proxy.py"), str(port),
            *(f"{name}={target}" for name, target in routes.items())]
    process = Process("connect-proxy", argv, base_env(), tmp_dir, None, os.path.join(tmp_dir, f"connect-{port}.log"))
    process.url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"the CONNECT proxy did not listen:\n{process.output()}")


def start_gunicorn(tmp_dir, app="wsgi:app", **settings):
    """Serve `app` (the proxy) with Gunicorn gevent workers, from a folder with no .env in it."""
    port = free_port()
    workers = int(settings.pop("WEB_CONCURRENCY", 2))
    env = base_env(PORT=port, WEB_CONCURRENCY=workers, **settings)
    argv = [os.path.join(BIN, "gunicorn"), "--pythonpath", ROOT, "-c", os.path.join(ROOT, "gunicorn.conf.py"), app]
    process = Process("gunicorn", argv, env, tmp_dir, f"http://127.0.0.1:{port}/health",
                      os.path.join(tmp_dir, f"gunicorn-{port}.log"))
    process.url = f"http://127.0.0.1:{port}"
    process.workers = workers
    return process


def start_redis(tmp_dir):
    """A throwaway Redis on a free loopback port (Debian's redis-server; scripts/test installs it)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server (scripts/test does)")
    port = free_port()
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
            "--dir", tmp_dir]
    process = Process("redis", argv, base_env(), tmp_dir, None, os.path.join(tmp_dir, "redis.log"))
    process.url = f"redis://127.0.0.1:{port}/0"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                sock.sendall(b"PING\r\n")
                if sock.recv(16).startswith(b"+PONG"):
                    return process
        except OSError:
            time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"redis not ready:\n{process.output()}")


def start_nginx(tmp_dir, upstream_port, tls=None):
    """Debian's nginx in front of a Gunicorn port (or a list of them: an upstream server each), serving the
    repo's own site file (deploy/), with only its listen port and upstream addresses changed (scripts/test
    installs nginx); with `tls`, a (certificate chain, key) pair of PEM files, it terminates TLS as the
    site's comment says."""
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        raise RuntimeError("nginx is not installed: apt-get install nginx (scripts/test does)")
    port = free_port()
    with open(os.path.join(ROOT, "deploy", "nginx-gemini-proxy.conf")) as handle:
        site = handle.read()
    upstream_ports = upstream_port if isinstance(upstream_port, (list, tuple)) else [upstream_port]
    site = site.replace("server 127.0.0.1:8000;",
                        "\n    ".join(f"server 127.0.0.1:{port};" for port in upstream_ports))
    if tls:
        site = site.replace("listen 80;", f"listen 127.0.0.1:{port} ssl;\n    ssl_certificate {tls[0]};\n"
                                          f"    ssl_certificate_key {tls[1]};")
    else:
        site = site.replace("listen 80;", f"listen 127.0.0.1:{port};")
    assert all(f"127.0.0.1:{up};" in site for up in upstream_ports) and str(port) in site, \
        "the site file's listen or upstream line changed"
    temp = os.path.join(tmp_dir, "nginx-temp")
    os.makedirs(temp, exist_ok=True)
    config = os.path.join(tmp_dir, "nginx.conf")
    with open(config, "w") as handle:
        # Run as root, nginx's worker would switch to nobody, who cannot write a request body too large
        # for memory (a file's chunk) into the test's private folder; as another user this is ignored.
        handle.write(f"""daemon off;
user root;
worker_processes 1;
pid {tmp_dir}/nginx.pid;
error_log {tmp_dir}/nginx-error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {tmp_dir}/nginx-access.log;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{site}
}}
""")
    process = Process("nginx", [binary, "-c", config, "-p", tmp_dir], base_env(), tmp_dir, None,
                      os.path.join(tmp_dir, "nginx.log"))
    process.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return process
        except OSError:
            time.sleep(0.1)
    process.stop()
    raise RuntimeError(f"nginx not ready:\n{process.output()}")


def _nginx_binary():
    binary = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else None)
    if binary is None:
        raise RuntimeError("nginx is not installed: apt-get install nginx (scripts/test does)")
    return binary


# What the HTTP/2 front logs of each request: its connection's serial number (one a TLS handshake), the
# protocol it came in on, where it went, and whether its answer was sent in full ("OK", else empty: the
# client reset the stream). Read by h2_seen().
H2_LOG_FORMAT = "$connection $server_protocol $status $request_method $uri $request_completion"


def start_h2_emulator(tmp_dir, keys, tls, requests_per_connection=100000, reset_models=()):
    """The emulator behind nginx serving HTTP/2 over TLS (and HTTP/1.1 to a client whose ALPN asks for
    it), as Google's front end does: `tls` is a (certificate chain, key) pair of PEM files. nginx, a
    widely deployed HTTP/2 server, multiplexes, flow-controls and logs each request's connection and
    protocol; the gevent emulator behind it stays as it is. After `requests_per_connection` requests
    nginx ends a connection with a graceful GOAWAY; a call to one of `reset_models` is reset (RST_STREAM)
    without an answer, as a connection dropped mid-flight would leave it."""
    emulator = start_emulator(tmp_dir, keys)
    port = free_port()
    folder = os.path.join(tmp_dir, f"h2-{port}")
    os.makedirs(os.path.join(folder, "temp"), exist_ok=True)
    resets = "".join(f"""
        location ~ "/models/{model}:" {{ return 444; }}""" for model in reset_models)
    config = os.path.join(folder, "nginx.conf")
    with open(config, "w") as handle:
        handle.write(f"""daemon off;
user root;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 8192; }}
http {{
    log_format h2 '{H2_LOG_FORMAT}';
    access_log {folder}/access.log h2;
    client_body_temp_path {folder}/temp/body;
    proxy_temp_path {folder}/temp/proxy;
    fastcgi_temp_path {folder}/temp/fastcgi;
    uwsgi_temp_path {folder}/temp/uwsgi;
    scgi_temp_path {folder}/temp/scgi;
    upstream emulator {{
        server 127.0.0.1:{emulator.port};
        keepalive 1024;
    }}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {tls[0]};
        ssl_certificate_key {tls[1]};
        keepalive_requests {requests_per_connection};
        client_max_body_size 64m;
        location / {{
            proxy_pass http://emulator;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host:$server_port;
            proxy_buffering off;
            proxy_request_buffering off;
            proxy_read_timeout 300s;
        }}{resets}
    }}
}}
""")
    front = Process("h2-front", [_nginx_binary(), "-c", config, "-p", folder], base_env(), folder, None,
                    os.path.join(folder, "nginx.log"))
    front.url, front.port, front.emulator = f"https://localhost:{port}", port, emulator
    front.access_log = os.path.join(folder, "access.log")
    stop_front = front.stop

    def stop(timeout=15.0):
        stop_front(timeout)
        emulator.stop(timeout)

    front.stop = stop
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return front
        except OSError:
            time.sleep(0.1)
    front.stop()
    raise RuntimeError(f"the HTTP/2 front was not ready:\n{front.output()}")


def h2_seen(front):
    """[(connection, protocol, status, method, path, completion)] of every request the HTTP/2 front has logged."""
    with open(front.access_log) as handle:
        return [tuple(line.split(" ")) for line in handle.read().splitlines() if line]


class Postgres:
    """A throwaway PostgreSQL cluster on a free loopback port, that a test can stop and start again
    (Debian's postgresql; scripts/test installs it). The server refuses to run as root, so under root it
    runs as the package's postgres user."""

    def __init__(self):
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
        if not found:
            raise RuntimeError("PostgreSQL is not installed: apt-get install postgresql (scripts/test does)")
        self.bin = os.path.dirname(found[-1])
        self.folder = tempfile.mkdtemp(prefix="gemini-proxy-pg-")
        self.data = os.path.join(self.folder, "data")
        self.as_owner = []
        if os.geteuid() == 0:
            shutil.chown(self.folder, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/postgres"
        subprocess.run(self.as_owner + [os.path.join(self.bin, "initdb"), "-D", self.data, "-U", "postgres",
                                        "-A", "trust", "--no-sync"], check=True, capture_output=True)
        self.process = None

    def start(self, timeout=30.0):
        argv = self.as_owner + [os.path.join(self.bin, "postgres"), "-D", self.data, "-p", str(self.port),
                                "-h", "127.0.0.1", "-k", self.folder, "-c", "fsync=off"]
        self.process = Process("postgres", argv, base_env(), "/", None, os.path.join(self.folder, "server.log"))
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.proc.poll() is not None:
                raise RuntimeError(f"postgres exited:\n{self.process.output()}")
            ready = subprocess.run([os.path.join(self.bin, "pg_isready"), "-h", "127.0.0.1", "-p", str(self.port)],
                                   capture_output=True)
            if ready.returncode == 0:
                return self
            time.sleep(0.2)
        raise RuntimeError(f"postgres not ready after {timeout} s:\n{self.process.output()}")

    def stop(self):
        """A fast shutdown: open sessions are cut, as when a database server goes away."""
        if self.process is not None and self.process.proc.poll() is None:
            os.killpg(self.process.proc.pid, signal.SIGINT)  # runuser and the postmaster both
            self.process.proc.wait(30)
        if self.process is not None:
            self.process.log.close()
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.folder, ignore_errors=True)


def worker_holding(client_address, server_port, pids):
    """Which of `pids` holds the server side of the TCP connection from `client_address` (host, port)
    to `server_port`, read from /proc: the socket's inode, then the process with it open."""
    wanted = f":{client_address[1]:04X}"
    inode = None
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with open(table) as handle:
            for line in handle.readlines()[1:]:
                fields = line.split()
                if fields[1].endswith(f":{server_port:04X}") and fields[2].endswith(wanted):
                    inode = fields[9]
    assert inode, f"no connection from {client_address} to port {server_port}"
    for pid in pids:
        for descriptor in glob.glob(f"/proc/{pid}/fd/*"):
            try:
                if os.readlink(descriptor) == f"socket:[{inode}]":
                    return pid
            except OSError:
                continue
    raise AssertionError(f"none of {pids} holds the connection from {client_address}")
