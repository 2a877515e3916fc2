"""The emulator served from a thread of the test process, for the fast tier: real HTTP, no process."""
import socket
import threading

from werkzeug.serving import WSGIRequestHandler, make_server

from proxy.emulator.app import create_emulator


class _QuietHandler(WSGIRequestHandler):
    # HTTP/1.1 keeps the proxy's pooled connections open, as they are to Google and to the emulator process.
    protocol_version = "HTTP/1.1"

    def log_request(self, *args, **kwargs):
        pass


class ThreadedEmulator:
    """The same Flask app `python -m proxy.emulator` serves, on a free loopback port, one thread a request
    (its faults and latencies sleep with time.sleep, so each request needs a thread of its own)."""

    def __init__(self, keys):
        self.app = create_emulator(valid_keys=list(keys))
        self.server = make_server("127.0.0.1", 0, self.app, threaded=True, request_handler=_QuietHandler)
        # Accepted sockets inherit it: no 40 ms of Nagle and delayed ACKs between a reply's headers and body.
        self.server.socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.port = self.server.server_port
        self.url = f"http://127.0.0.1:{self.port}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="emulator", daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)
