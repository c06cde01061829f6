"""A real PostgreSQL server for tests: started in a temporary directory on 127.0.0.1 and a free
port, as the `postgres` user when run as root (PostgreSQL refuses root; CI runs as root)."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path


def server_binaries() -> Path | None:
    """The directory holding initdb and pg_ctl: on PATH, or Debian's /usr/lib/postgresql/N/bin."""
    found = shutil.which("initdb")
    if found and shutil.which("pg_ctl"):
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(versions[-1]).parent if versions else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server(str):
    """A running server's URL, with `restart()`: the server restarts and every connection is
    dropped. yaml.safe_dump refuses str subclasses: write str(server) into a recipe."""

    restart: Callable[[], None]


@contextmanager
def postgres_server() -> Iterator[Server]:
    """Yield the URL of a fresh server (a `Server`); stop it and delete its files on exit."""
    bindir = server_binaries()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found")
    as_root = os.geteuid() == 0
    # Not under pytest's tmp_path: its parents are private to root, and the server runs as postgres.
    home = Path(tempfile.mkdtemp(prefix="pretune-pg-"))
    run_as = ["runuser", "-u", "postgres", "--"] if as_root else []
    if as_root:
        shutil.chown(home, "postgres", "postgres")
    data, port = home / "data", _free_port()

    def pg(*args: str) -> None:
        subprocess.run([*run_as, *args], check=True, capture_output=True, text=True)

    try:
        pg(str(bindir / "initdb"), "-D", str(data), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync")
        pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-w", "-t", "60", "start",
           "-o", f"-h 127.0.0.1 -p {port} -k {home} -F -c max_connections=50")
        server = Server(f"postgresql://postgres@127.0.0.1:{port}/postgres")
        server.restart = lambda: pg(str(bindir / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-m", "fast",
                                    "-w", "-t", "60", "restart")
        try:
            yield server
        finally:
            pg(str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "-w", "stop")
    except subprocess.CalledProcessError as e:
        raise RuntimeError(f"PostgreSQL failed: {e.stderr or e.stdout}") from None
    finally:
        shutil.rmtree(home, ignore_errors=True)
