"""The operator's egress proxy for HTTPS, stood in for: it answers CONNECT host:port by opening a tunnel to
the address the test maps that host to, and relays the encrypted bytes both ways without reading them.
Each tunnel is logged as "CONNECT host:port", so a test can tell the proxy was used.

    python tests/connect_proxy.py LISTEN_PORT HOST:PORT=TARGET_HOST:TARGET_PORT [...]
"""
from gevent import monkey

monkey.patch_all()

import os  # noqa: E402
import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from scripts.bench_relay import pipe  # noqa: E402  (the benchmark's relay copies bytes the same way)

_HEAD_LIMIT = 16 * 1024


def read_head(client):
    head = b""
    while b"\r\n\r\n" not in head:
        data = client.recv(4096)
        if not data or len(head) > _HEAD_LIMIT:
            return None
        head += data
    return head


def main(listen_port, *mappings):
    routes = dict(mapping.split("=", 1) for mapping in mappings)

    def tunnel(client, _address):
        head = read_head(client)
        method, target = (head.split(b"\r\n", 1)[0].decode("latin-1").split(" ") + ["", ""])[:2] if head else ("", "")
        if method != "CONNECT" or target not in routes:
            client.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            return
        host, port = routes[target].rsplit(":", 1)
        print(f"CONNECT {target}", flush=True)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        back = gevent.spawn(pipe, upstream, client)
        pipe(client, upstream)
        back.join()
        upstream.close()

    print(f"CONNECT proxy listening on 127.0.0.1:{listen_port}", flush=True)
    StreamServer(("127.0.0.1", int(listen_port)), tunnel).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:])
