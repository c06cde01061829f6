"""pretune serve RUN_DIR [--host 127.0.0.1] [--port 8000] [--max-batch 32] [--max-wait-ms 5] [--threads N]"""

from __future__ import annotations

from pathlib import Path

import typer


def serve(
    run_dir: Path = typer.Argument(..., help="a run directory written by pretune fit, compress or export"),
    host: str = typer.Option("127.0.0.1", help="address to bind (loopback unless told otherwise)"),
    port: int = typer.Option(8000, help="port to bind; 0: a free one (printed at start)"),
    max_batch: int = typer.Option(32, help="most inputs run together in one forward pass"),
    max_wait_ms: float = typer.Option(5.0, help="how long a request waits for others to join its batch"),
    threads: int = typer.Option(1, help="inference threads: batches that may run at the same time"),
    max_queue: int = typer.Option(512, help="inputs waiting at most; beyond, 503 with Retry-After"),
    max_inputs: int = typer.Option(256, help="most inputs in one request"),
    max_text_bytes: int = typer.Option(100_000, help="largest text (UTF-8 bytes) or encoded image"),
    max_image_pixels: int = typer.Option(4096 * 4096, help="largest image (width x height) decoded; beyond, 413"),
    max_connections: int = typer.Option(4096, help="open connections at most (fewer if file descriptors run "
                                        "short); beyond, the oldest idle one is closed"),
    header_timeout: float = typer.Option(10.0, help="seconds a client has to send a request's head, and "
                                         "between two parts of its body"),
    name: str | None = typer.Option(None, help="model name in /v2/models/NAME (default: the run's folder name)"),
    access_log: bool = typer.Option(True, "--access-log/--no-access-log", help="one JSON line per request on stderr"),
) -> None:
    """Serve a run's model over HTTP: Open Inference Protocol V2 (/v2/models/NAME/infer), Hugging
    Face style POST /predict, Prometheus /metrics; requests batched dynamically. SIGTERM or
    Ctrl-C stops it after the requests in flight."""
    from pretune.api import serve as serve_api

    serve_api(run_dir, host=host, port=port, max_batch=max_batch, max_wait_ms=max_wait_ms, threads=threads,
              max_queue=max_queue, max_inputs=max_inputs, max_text_bytes=max_text_bytes,
              max_image_pixels=max_image_pixels, max_connections=max_connections, header_timeout_s=header_timeout,
              name=name, access_log=access_log)
