"""An answer on one of http1pool's connections, read as urllib3's HTTPResponse reads it.

The interface the two APIs use (status, headers, stream, read, read_chunked, data, release_conn, close)
and urllib3's errors for a body broken off or too slow. Its connection goes back to the pool the moment
the body has been read to its end, and is closed, never reused, when the answer is left part-way."""
import http.client
import ssl
from functools import cached_property

from urllib3 import HTTPHeaderDict
from urllib3.exceptions import DecodeError, ProtocolError, ReadTimeoutError, ResponseNotChunked, SSLError
from urllib3.response import BaseHTTPResponse, _get_decoder

from . import http1wire

_MAX_LINE = 2**16  # urllib3's longest chunk-size or trailer line
_PIECE = 2**16  # bytes asked for at a time when the caller names no size
# A body or chunk is read whole in pieces of at most this: a length upstream cannot mean (2**40, say)
# is refused when the bytes run out, not by allocating it at once.
_MOST_AT_ONCE = 2**20


def broken(exc, pool):
    """urllib3's error for `exc` raised while a body is read (its HTTPResponse._error_catcher)."""
    if isinstance(exc, TimeoutError):
        return ReadTimeoutError(pool, None, "Read timed out.")
    if isinstance(exc, ssl.SSLError):
        return SSLError(exc)
    if isinstance(exc, (http.client.HTTPException, OSError, MemoryError, OverflowError)):
        return ProtocolError(f"Connection broken: {exc!r}", exc)
    return exc


def _read_exactly(reader, size):
    """`size` bytes from `reader`, or IncompleteRead when they run out first."""
    if size <= _MOST_AT_ONCE:
        data = reader.read(size)
    else:
        pieces, left = [], size
        while left:
            piece = reader.read(left if left < _MOST_AT_ONCE else _MOST_AT_ONCE)
            if not piece:
                break
            pieces.append(piece)
            left -= len(piece)
        data = b"".join(pieces)
    if len(data) < size:
        raise http.client.IncompleteRead(data, size - len(data))
    return data


class Http1Response:
    """A live answer (urllib3's preload_content=False); `plain_headers` is what dict(headers) would be."""

    def __init__(self, pool, connection, head, method, decode_content):
        self.status, self.version, self.reason, self._pairs = head
        self.plain_headers, lowered = http1wire.header_dicts(self._pairs)
        self.chunked, self._left, self._will_close = http1wire.framing(self.status, self.version, lowered, method)
        self._encoding = lowered.get("content-encoding")
        self._pool, self._connection, self._reader = pool, connection, connection.reader
        self._decode, self._decoder = decode_content, None
        self._pending = b""  # read past what read(amt) asked for
        self._body = None
        self._done = False
        if self._left == 0:
            self._finish()

    @cached_property
    def headers(self):
        """urllib3's case-insensitive headers, built when someone asks for them."""
        return HTTPHeaderDict(self._pairs)

    def stream(self, amt=_PIECE, decode_content=None):
        """Each piece of the body as it arrives: a chunk whole, else what the socket has, up to `amt`."""
        decoding = self._decoding(decode_content)
        if self._pending:
            piece, self._pending = self._pending, b""
            yield self._decoded(piece) if decoding else piece
        while not self._done:
            piece = self._next(amt or _PIECE)
            if piece:
                yield self._decoded(piece) if decoding else piece
        if decoding and self._decoder:
            tail = self._decoder.flush()
            if tail:
                yield tail

    def read_chunked(self, amt=None, decode_content=None):
        if not self.chunked:
            raise ResponseNotChunked("Response is not chunked. Header 'transfer-encoding: chunked' is missing.")
        return self.stream(amt, decode_content)

    def read(self, amt=None, decode_content=None):
        pieces, size = [self._pending], len(self._pending)
        if amt is None:
            pieces.append(self._rest())
        while amt is not None and size < amt and not self._done:
            piece = self._next(amt - size)
            pieces.append(piece)
            size += len(piece)
        data = b"".join(pieces)
        data, self._pending = (data, b"") if amt is None else (data[:amt], data[amt:])
        if not self._decoding(decode_content):
            return data
        return self._decoded(data) + (self._decoder.flush() if self._done and self._decoder else b"")

    @property
    def data(self):
        """The whole body, read once."""
        if self._body is None:
            self._body = self.read()
        return self._body

    def release_conn(self):
        """Done with the answer: its connection was pooled at the body's end; one left part-way is closed."""
        if self._connection is not None:
            self._abandon()

    close = release_conn

    # Reading -------------------------------------------------------------------------------------------

    def _next(self, size):
        """The next piece of the body (b"" at its end); the connection let go of at the end or on an error."""
        try:
            if self.chunked:
                return self._chunk()
            if self._left is None:  # to the connection's close
                piece = self._reader.read1(size)
                if not piece:
                    self._finish()
                return piece
            piece = self._reader.read1(size if size < self._left else self._left)
            if not piece:
                raise http.client.IncompleteRead(b"", self._left)
            self._left -= len(piece)
            if not self._left:
                self._finish()
            return piece
        except Exception as exc:
            self._abandon()
            raise broken(exc, self._pool) from exc

    def _rest(self):
        """The rest of the body, at once."""
        if self._done:
            return b""
        if self.chunked:
            return b"".join(iter(lambda: self._next(_PIECE), b""))
        try:
            if self._left is None:
                rest = self._reader.read()
            else:
                rest = _read_exactly(self._reader, self._left)
        except Exception as exc:
            self._abandon()
            raise broken(exc, self._pool) from exc
        self._finish()
        return rest

    def _chunk(self):
        """The next chunk whole, as urllib3's read_chunked yields it; b"" once the last has been read."""
        size = self._size_line()
        if size == 0:
            self._trailers()
            self._finish()
            return b""
        chunk = _read_exactly(self._reader, size)
        if len(self._reader.read(2)) < 2:  # the chunk's CRLF
            raise http.client.IncompleteRead(chunk, 2)
        return chunk

    def _size_line(self):
        line = self._reader.readline(_MAX_LINE + 1)
        if len(line) > _MAX_LINE:
            raise ProtocolError("Response chunk size line exceeded maximum allowed length")
        line = line.split(b";", 1)[0]
        try:
            size = int(line, 16)
        except ValueError:
            size = -1
        if size < 0:
            raise ProtocolError(f"Connection broken: invalid chunk length {line!r}" if line else
                                "Response ended prematurely")
        return size

    def _trailers(self):
        while True:
            line = self._reader.readline(_MAX_LINE + 1)
            if len(line) > _MAX_LINE:
                raise ProtocolError("Response chunk trailer line exceeded maximum allowed length")
            if not line or line == b"\r\n":
                return

    def _finish(self):
        self._done = True
        connection, self._connection = self._connection, None
        if connection is None:
            return
        if self._will_close:
            connection.close()
        else:
            self._pool.put(connection)

    def _abandon(self):
        self._done = True
        connection, self._connection = self._connection, None
        if connection is not None:
            connection.close()

    # Content-Encoding, undone only when asked (urllib3's default; the pass-through relays it as sent) ------

    def _decoding(self, decode_content):
        if not (self._decode if decode_content is None else decode_content) or not self._encoding:
            return False
        if self._decoder is None:
            encoding = self._encoding.lower()
            known = BaseHTTPResponse.CONTENT_DECODERS
            if encoding in known or any(part.strip() in known for part in encoding.split(",")):
                self._decoder = _get_decoder(encoding)
            else:
                self._decoder = False
        return bool(self._decoder)

    def _decoded(self, data):
        try:
            return self._decoder.decompress(data)
        except BaseHTTPResponse.DECODER_ERROR_CLASSES as exc:
            raise DecodeError(f"Received response with content-encoding: {self._encoding.lower()}, "
                              "but failed to decode it.", exc) from exc
