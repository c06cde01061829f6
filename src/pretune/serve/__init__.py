"""Serve any run over HTTP: Open Inference Protocol V2 and Hugging Face's `/predict`, with
dynamic batching, Prometheus metrics and a JSON access log (see docs/serve.md).

    pretune.serve("runs/demo", port=8000)          # blocks until SIGTERM / Ctrl-C

Pieces: config.py (ServeConfig), model.py (the run's Predictor, thread-safe), app.py (FastAPI
routes) and what a request goes through: reading.py (body and JSON), limits.py (inputs, images),
batcher.py (the queue and its batches), answers.py (responses), with protocol.py (the wire
formats) and errors.py (ServeError); metrics.py (Prometheus, access log), server.py (uvicorn,
binding, graceful stop), connections.py (file-descriptor budget, timeouts, lingering close).
"""

from __future__ import annotations

from pathlib import Path

from pretune.serve.config import ServeConfig, serve_config


def create_app(run, cfg: ServeConfig | None = None, **options):
    """The FastAPI app serving `run` (a Run or its path), for an ASGI server of one's own."""
    from pretune.serve.app import create_app as build
    from pretune.serve.model import ServedModel
    from pretune.serve.server import load_uvicorn

    load_uvicorn()
    cfg = cfg or serve_config(**options)
    return build(ServedModel(run, cfg.name, cfg.max_batch), cfg)


def serve(run, **options) -> None:
    """Serve `run` until SIGTERM or Ctrl-C (in-flight requests finish first). Options are
    ServeConfig's fields: host, port, name, max_batch, max_wait_ms, threads, max_queue,
    max_inputs, max_text_bytes, max_image_pixels, max_connections,
    header_timeout_s, access_log."""
    from pretune.serve.server import describe, run_server

    cfg = serve_config(**options)
    app = create_app(run, cfg)
    model = app.state.model
    run_server(app, cfg, describe(model, cfg, Path(model.run.path)))


__all__ = ["ServeConfig", "create_app", "serve"]
