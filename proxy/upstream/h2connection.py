"""httpcore's HTTP/2 connection, made fit to carry a hundred independent requests at once (h2pool's)."""
import time

import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import httpcore2 as httpcore
import httpcore2._sync.http2
from httpcore2._exceptions import ConnectionNotAvailable
from httpcore2._sync.http2 import HTTP2Connection


class _Closing:
    """What httpcore's write asks of a request, for the reset of a stream whose request is gone."""

    extensions = {"timeout": {"write": 5.0}}  # seconds


_CLOSING = _Closing()


class _SharedHTTP2Connection(HTTP2Connection):
    """httpcore's HTTP/2 connection, made fit to carry a hundred independent requests at once.

    - A graceful GOAWAY's streams finish. A server going away (Google's front end does, as connections
      age) sends GOAWAY with NO_ERROR and the last stream it will answer, and answers those in full
      (RFC 9113, 6.8); h2 marks the connection closed on receipt and httpcore fails every stream in
      flight. Here the connection stays open for the streams the server took, and takes no new one
      (those it refused, httpcore sends again on another connection).
    - One request's read timeout is that request's, and it holds: httpcore fails the whole connection
      with it, yet lets a request wait for the read lock unbounded and count any stream's data as its
      own, so ten requests waiting on one connection could wait ten timeouts, and a busy connection none.
    - A stream abandoned before its end is reset, and data still arriving for it is handed back to the
      connection's flow-control window, which would otherwise shrink until every stream stalls."""

    def handle_request(self, request):
        if self._connection_terminated is not None:
            raise ConnectionNotAvailable()
        return super().handle_request(request)

    def _receive_events(self, request, stream_id=None):
        goaway = self._connection_terminated
        draining = goaway is not None and goaway.error_code == 0 and stream_id is not None and \
            stream_id <= goaway.last_stream_id
        if draining:
            self._connection_terminated = None  # read on: the server finishes what it took
        try:
            super()._receive_events(request, stream_id)
        finally:
            if draining and self._connection_terminated is None:
                self._connection_terminated = goaway
        ended = self._connection_terminated
        if ended is not None and ended.error_code == 0 and not self._connection_error:
            self._h2_state.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN

    def is_available(self):
        return self._connection_terminated is None and super().is_available()

    def _receive_stream_event(self, request, stream_id):
        """The stream's next event, within the request's read timeout of silence on this stream."""
        timeouts = request.extensions.get("timeout", {})
        read = timeouts.get("read")
        deadline = None if read is None else time.monotonic() + read
        lock = self._read_lock._lock  # httpcore's sync Lock wraps threading's, which takes a timeout
        try:
            while not self._events.get(stream_id):
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and (left <= 0 or not lock.acquire(timeout=left)):
                    raise httpcore.ReadTimeout("no answer on this stream within the read timeout")
                if left is None:
                    lock.acquire()
                try:
                    if not self._events.get(stream_id):
                        request.extensions["timeout"] = {**timeouts, "read": left}  # this read: what is left
                        self._receive_events(request, stream_id)
                finally:
                    lock.release()
                self._write_outgoing_data(request)
        finally:
            request.extensions["timeout"] = timeouts
        event = self._events[stream_id].pop(0)
        if isinstance(event, h2.events.StreamReset):
            raise httpcore.RemoteProtocolError(event)
        return event

    def _read_incoming_data(self, request):
        try:
            events = super()._read_incoming_data(request)
        except httpcore.ReadTimeout:
            # The reader's own wait ran out, not the connection: httpcore would fail every stream on it
            # with this one's timeout (a slow answer cutting off a hundred others). The socket is sound
            # (a TLS record read in part stays in OpenSSL's buffer), so the other streams read on.
            self._read_exception, self._connection_error = None, False
            raise
        for event in events:
            if isinstance(event, h2.events.DataReceived) and event.stream_id not in self._events:
                # Data of a stream nobody reads any more (timed out, or its client gone): handed back to
                # the connection's window, which would otherwise shrink for every stream until it stalls.
                self._h2_state.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        return events

    def _response_closed(self, stream_id):
        stream = self._h2_state.streams.get(stream_id)
        if stream is not None and not stream.closed:
            # Abandoned before its end: the server is told at once to stop sending it.
            try:
                self._h2_state.reset_stream(stream_id, h2.errors.ErrorCodes.CANCEL)
                self._write_outgoing_data(_CLOSING)
            except Exception:  # noqa: BLE001 - the connection is failing anyway; its own error is raised elsewhere
                pass
        super()._response_closed(stream_id)


# httpcore builds its HTTP/2 connections from this name (directly or through a proxy's tunnel), when ALPN
# has chosen h2; nothing else in the worker uses httpcore2.
httpcore2._sync.http2.HTTP2Connection = _SharedHTTP2Connection
