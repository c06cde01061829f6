"""Connections from clients that may be hostile: uvicorn's h11 protocol plus what it lacks.

- **A file-descriptor budget.** At start the soft RLIMIT_NOFILE is raised to the hard limit and
  the server keeps at most `budget` connections, room left for the files already open and for
  two whole accept() bursts (see `connection_budget`). Past the budget, a new connection closes
  the oldest one that has no request in progress, so a slowloris of idle sockets never stops
  accept() (at EMFILE asyncio stops accepting for a second, logging a traceback each time) and
  health keeps answering.
- **A header timeout.** A connection that has not sent a whole request head within
  `header_timeout` seconds of opening (or of its last answer) is closed; uvicorn only times out
  the idle gap after an answer (`timeout_keep_alive`).
- **Answers before a close, and a lingering close.** A request head over h11's limit gets 431
  (other malformed requests 400) with a JSON body; and when the server closes a connection
  whose client is still sending (that answer, a 413 for a body too large), it half-closes and
  reads on for a moment first: a close with unread data sends a reset, and the client loses
  the answer it was about to read.
"""

from __future__ import annotations

import json
import logging
import os
import re
import time
from collections import OrderedDict
from http import HTTPStatus

log = logging.getLogger("pretune.serve")

MAX_HEADER_BYTES = 16 * 1024  # h11's incomplete-event limit: the request line and headers together
KEEP_ALIVE_S = 5.0  # idle time after an answer before a keep-alive connection is closed
BACKLOG = 128  # connections the kernel queues for accept(), and asyncio accepts in one go
_HEAD_END = re.compile(rb"\n\r?\n")  # h11 ends a head at a blank line, CRLF or bare LF
LINGER_S, LINGER_BYTES = 2.0, 16 << 20  # how long and how much is read after a half-close


def raise_fd_limit() -> int:
    """Raises the soft RLIMIT_NOFILE toward the hard limit; the soft limit it ends at."""
    try:
        import resource
    except ImportError:  # not POSIX: no such limit to raise
        return 1 << 16
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = 1 << 16 if hard == resource.RLIM_INFINITY else min(hard, 1 << 16)
    if soft != resource.RLIM_INFINITY and soft < want:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def connection_budget(max_connections: int) -> int:
    """How many client connections fit in the file descriptors left, at most `max_connections`.

    Past the budget, each new connection aborts an old one (its socket closed at once), but a
    connection is counted only at connection_made, two turns of the loop after its accept (a task
    makes the transport, which schedules connection_made), and each turn may accept a whole burst
    (up to BACKLOG): at worst the budget and two bursts not yet counted are open together. One
    burst of room was not enough on a slow machine (EMFILE in CI); 64 more cover the loop's own
    files (epoll, its self-pipe) and what the model opens after this count."""
    soft = raise_fd_limit()
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 64
    return max(8, min(max_connections, soft - in_use - 2 * BACKLOG - 64))


def protocol_class(budget: int, header_timeout: float):
    """uvicorn's H11Protocol with the budget and timeouts above (one class per server: the
    connections it counts are that server's)."""
    import h11
    from uvicorn.protocols.http.h11_impl import H11Protocol

    open_connections: OrderedDict = OrderedDict()  # oldest first
    unfinished = {h11.SEND_BODY, h11.ERROR, h11.MIGHT_SWITCH_PROTOCOL}  # the client may still be sending

    class Protocol(H11Protocol):
        def connection_made(self, transport) -> None:
            self.raw, self.draining, self.drained, self.refused = transport, False, 0, False
            self.header_timer = None
            super().connection_made(_LingeringTransport(transport, self))
            open_connections[self] = None
            self.expect_head()
            if len(open_connections) > budget:
                victim = next((c for c in open_connections if c is not self and c.idle), self)
                open_connections.pop(victim, None)
                _abort_now(victim.raw)

        @property
        def idle(self) -> bool:  # no request in progress: at most a partial request head
            return self.cycle is None or self.cycle.response_complete

        def expect_head(self) -> None:
            if self.header_timer is not None:
                self.header_timer.cancel()
            self.header_timer = self.loop.call_later(header_timeout, self.head_too_late)

        def head_too_late(self) -> None:
            if self.idle and not self.raw.is_closing():
                open_connections.pop(self, None)
                self.raw.abort()

        def data_received(self, data: bytes) -> None:
            if self.draining:  # after our answer and half-close: read and drop, for a while
                self.drained += len(data)
                if self.drained > LINGER_BYTES:
                    self.raw.close()
                return
            if self.conn.their_state is h11.IDLE and self.head_too_long(data):
                self.refuse(431, f"request line and headers over {MAX_HEADER_BYTES} bytes")
                return
            super().data_received(data)
            if not self.idle and self.header_timer is not None:
                self.header_timer.cancel()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if self.idle and not self.transport.is_closing():
                self.expect_head()

        def connection_lost(self, exc) -> None:
            open_connections.pop(self, None)
            if self.header_timer is not None:
                self.header_timer.cancel()
            super().connection_lost(exc)

        def head_too_long(self, data: bytes) -> bool:
            """h11 bounds only a head that arrives in pieces; one read may bring a whole large one."""
            pending = self.conn.trailing_data[0] + data
            return len(pending) > MAX_HEADER_BYTES and not _HEAD_END.search(pending, 0, MAX_HEADER_BYTES + 4)

        def send_400_response(self, msg: str) -> None:
            """A malformed request (h11 refused it): 431 when the head outgrew the limit."""
            if len(self.conn.trailing_data[0]) > MAX_HEADER_BYTES:
                self.refuse(431, f"request line and headers over {MAX_HEADER_BYTES} bytes")
            else:
                self.refuse(400, "malformed HTTP request")

        def refuse(self, status: int, error: str) -> None:
            body = json.dumps({"error": error}).encode()
            head = (f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\ncontent-type: application/json\r\n"
                    f"content-length: {len(body)}\r\nconnection: close\r\n\r\n")
            self.refused = True
            if self.header_timer is not None:  # from here LINGER_S bounds the connection
                self.header_timer.cancel()
            self.transport.write(head.encode() + body)  # h11 is not asked: its state may be ERROR
            self.transport.close()

        def may_still_send(self) -> bool:
            return self.refused or self.conn.their_state in unfinished

    return Protocol


def _abort_now(transport) -> None:
    """Aborts a connection and frees its file descriptor now. abort() alone closes the socket on
    the loop's next turn, by which time a burst of accepts may have used the room it was to free
    (asyncio's selector transports keep the socket as `_sock`; the later close is a no-op)."""
    transport.abort()  # no lingering close: the reader is unregistered here
    sock = getattr(transport, "_sock", None)
    if sock is not None:
        sock.close()


class _LingeringTransport:
    """The transport as uvicorn sees it; close() lingers while the client may still be sending."""

    def __init__(self, transport, protocol):
        self._transport, self._protocol, self._closing = transport, protocol, False

    def __getattr__(self, name):
        return getattr(self._transport, name)

    def is_closing(self) -> bool:
        return self._closing or self._transport.is_closing()

    def close(self) -> None:
        if self._closing or self._transport.is_closing():
            return
        self._closing = True
        protocol = self._protocol
        if not protocol.may_still_send() or not self._transport.can_write_eof():
            self._transport.close()
            return
        try:
            self._transport.write_eof()  # our answer, then FIN; the reading goes on
        except OSError:  # the client is gone already
            self._transport.close()
            return
        protocol.draining = True
        if protocol.header_timer is not None:  # LINGER_S bounds the rest
            protocol.header_timer.cancel()
        self._transport.resume_reading()  # uvicorn's flow control may have paused it, and resumes no closing one
        protocol.loop.call_later(LINGER_S, self._transport.close)


class AcceptErrors:
    """A loop exception handler that turns accept()'s 'out of system resource' (EMFILE and
    the like) into one log line per 10 s instead of a traceback per try."""

    def __init__(self, loop):
        self.previous, self.last = loop.get_exception_handler(), 0.0

    def __call__(self, loop, context: dict) -> None:
        if "out of system resource" in context.get("message", ""):
            if time.monotonic() - self.last > 10:
                self.last = time.monotonic()
                log.warning("pretune serve: out of file descriptors (%s); accepting again shortly",
                            context.get("exception"))
            return
        if self.previous is not None:
            self.previous(loop, context)
        else:
            loop.default_exception_handler(context)
