"""Run the app on uvicorn: bind (loopback by default), say where, stop gracefully.

SIGTERM (and Ctrl-C) make uvicorn stop accepting connections, wait for the requests in
flight, then run the app's shutdown (the batcher finishes what it holds). uvicorn then
re-raises the signal it caught to the handler that was there before it; a no-op handler is
put there first, so the process ends with exit code 0 instead of dying of the signal.

The socket is bound here, before uvicorn starts, so a port already taken is one line (exit 2)
rather than uvicorn's log and exit 1; connections go through connections.py's protocol
(file-descriptor budget, header timeout, 431 for an oversized head, lingering close).
"""

from __future__ import annotations

import asyncio
import errno
import signal
import socket
import sys
import threading
from pathlib import Path

from pretune.errors import MissingExtraError, PretuneError
from pretune.serve import connections
from pretune.serve.config import ServeConfig


def load_uvicorn():
    try:
        import fastapi  # noqa: F401
        import prometheus_client  # noqa: F401
        import uvicorn
    except ImportError as e:
        raise MissingExtraError(e.name or "fastapi", "serve") from None
    return uvicorn


def create_server(app, cfg: ServeConfig, announce: str | None = None):
    """A uvicorn.Server for `app`; once bound it prints `announce` with the real address (the
    port the OS chose when cfg.port is 0) on stderr."""
    uvicorn = load_uvicorn()

    class Server(uvicorn.Server):
        def run(self, sockets=None):
            return super().run(sockets or [bind(cfg)])

        async def startup(self, sockets=None):
            loop = asyncio.get_running_loop()
            loop.set_exception_handler(connections.AcceptErrors(loop))
            await super().startup(sockets)
            if self.started and announce is not None:
                print(f"{announce} on http://{self.address}", file=sys.stderr, flush=True)

        @property
        def address(self) -> str:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    budget = connections.connection_budget(cfg.max_connections)
    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            lifespan="on", server_header=False, backlog=connections.BACKLOG,
                            http=connections.protocol_class(budget, cfg.header_timeout_s),
                            timeout_keep_alive=connections.KEEP_ALIVE_S,
                            h11_max_incomplete_event_size=connections.MAX_HEADER_BYTES)
    return Server(config)


def bind(cfg: ServeConfig) -> socket.socket:
    """The listening socket for cfg.host:cfg.port; a port taken or an address not ours: one line."""
    sock = socket.socket(socket.AF_INET6 if ":" in cfg.host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # a server just stopped leaves TIME_WAIT
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as e:
        sock.close()
        hint = ("; another process listens there (choose another --port, or --port 0 for a free one)"
                if e.errno == errno.EADDRINUSE else "")
        raise PretuneError(f"serve: cannot listen on {cfg.host}:{cfg.port}: {e.strerror or e}{hint}") from None
    return sock


def run_server(app, cfg: ServeConfig, announce: str) -> None:
    server = create_server(app, cfg, announce)
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _ignore) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        server.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not server.started:  # uvicorn logged why (the app's startup failed) and returned
        raise PretuneError(f"could not serve on {cfg.host}:{cfg.port} (see the message above)")


def _ignore(signum, frame) -> None:
    """Where uvicorn re-raises the signal it already handled: nothing left to do."""


def describe(model, cfg: ServeConfig, run_path: Path) -> str:
    return (f"pretune serve: {model.name} ({model.task.name}, {model.backend}, from {run_path}; "
            f"max batch {cfg.max_batch}, wait {cfg.max_wait_ms:g} ms, {cfg.threads} thread(s))")
