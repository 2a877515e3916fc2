"""Run the emulator: python -m proxy.emulator --port 8090."""
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import logging  # noqa: E402
import socket  # noqa: E402

from gevent.pywsgi import WSGIServer  # noqa: E402

from .app import create_emulator  # noqa: E402


def main(argv=None):
    parser = argparse.ArgumentParser(description="A local Gemini API emulator.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8090)
    parser.add_argument("--keys", default="", help="comma-separated valid keys (default: any key)")
    parser.add_argument("--latency-ms", type=float, default=0.0, help="delay before every answer")
    parser.add_argument("--access-log", action="store_true")
    parser.add_argument("--certfile", help="serve HTTPS with this certificate chain (PEM), as Google does")
    parser.add_argument("--keyfile", help="the certificate's private key (PEM)")
    args = parser.parse_args(argv)
    keys = [key.strip() for key in args.keys.split(",") if key.strip()]
    app = create_emulator(valid_keys=keys, latency_ms=args.latency_ms)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s emulator %(message)s")
    tls = {"certfile": args.certfile, "keyfile": args.keyfile} if args.certfile else {}
    logging.info("Gemini emulator listening on %s://%s:%d", "https" if tls else "http", args.host, args.port)
    # A deep accept queue: 500 clients connecting at once must not wait out a SYN retry (1 s).
    server = WSGIServer((args.host, args.port), app, log="default" if args.access_log else None,
                        error_log=logging.getLogger("emulator"), backlog=2048, **tls)
    server.init_socket()
    # Google's servers do not hold back a response's body behind its headers; without TCP_NODELAY
    # (inherited by accepted sockets) Nagle's algorithm and delayed ACKs would add 40 ms to every reply.
    server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    server.serve_forever()


if __name__ == "__main__":
    main()
