"""Run the app on uvicorn: bind (loopback by default), say where, stop gracefully.

SIGTERM (and Ctrl-C) make uvicorn stop accepting connections, wait for the requests in
flight, then run the app's shutdown (the batcher finishes what it holds). uvicorn then
re-raises the signal it caught to the handler that was there before it; a no-op handler is
put there first, so the process ends with exit code 0 instead of dying of the signal.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from pretune.errors import MissingExtraError
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
        async def startup(self, sockets=None):
            await super().startup(sockets)
            if self.started and announce is not None:
                print(f"{announce} on http://{self.address}", file=sys.stderr, flush=True)

        @property
        def address(self) -> str:
            host, port = self.servers[0].sockets[0].getsockname()[:2]
            return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    config = uvicorn.Config(app, host=cfg.host, port=cfg.port, log_level="warning", access_log=False,
                            lifespan="on", server_header=False)
    return Server(config)


def run_server(app, cfg: ServeConfig, announce: str) -> None:
    server = create_server(app, cfg, announce)
    main = threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _ignore) for s in (signal.SIGTERM, signal.SIGINT)} if main else {}
    try:
        server.run()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    if not server.started:  # uvicorn logs why (the port taken, the address not ours) and returns
        from pretune.errors import PretuneError

        raise PretuneError(f"could not serve on {cfg.host}:{cfg.port} (see the message above)")


def _ignore(signum, frame) -> None:
    """Where uvicorn re-raises the signal it already handled: nothing left to do."""


def describe(model, cfg: ServeConfig, run_path: Path) -> str:
    return (f"pretune serve: {model.name} ({model.task.name}, {model.backend}, from {run_path}; "
            f"max batch {cfg.max_batch}, wait {cfg.max_wait_ms:g} ms, {cfg.threads} thread(s))")
