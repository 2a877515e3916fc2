"""The benchmark's least hop: a gevent TCP relay that copies bytes to the emulator and back, parsing no
HTTP. What it adds is what one more loopback hop costs on this machine; the floor adds to it the
least a Flask app under Gunicorn costs.

    python scripts/bench_relay.py LISTEN_PORT UPSTREAM_HOST UPSTREAM_PORT
"""
from gevent import monkey

monkey.patch_all()

import socket  # noqa: E402
import sys  # noqa: E402

import gevent  # noqa: E402
from gevent.server import StreamServer  # noqa: E402


def pipe(source, target):
    try:
        while data := source.recv(65536):
            target.sendall(data)
    except OSError:
        pass
    finally:
        try:
            target.shutdown(socket.SHUT_WR)
        except OSError:
            pass


def main(listen_port, upstream_host, upstream_port):
    def relay(client, _address):
        upstream = socket.create_connection((upstream_host, int(upstream_port)))
        for end in (client, upstream):
            end.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        back = gevent.spawn(pipe, upstream, client)
        pipe(client, upstream)
        back.join()
        upstream.close()

    StreamServer(("127.0.0.1", int(listen_port)), relay, backlog=1024).serve_forever()


if __name__ == "__main__":
    main(*sys.argv[1:4])
