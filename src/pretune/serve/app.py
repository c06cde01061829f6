"""The HTTP application (FastAPI): Open Inference Protocol V2 routes, `POST /predict` in the
Hugging Face pipeline shape, `/metrics`, health. Every refusal is a 4xx with a JSON body
`{"error": "..."}` (the OIP error shape), unknown routes and methods included; a bug is a 500
with the same shape, its traceback logged, never sent.

A request goes through four pieces, one module each: reading.py (content type, the body counted
while it streams, bounded JSON), limits.py (inputs, sizes, images decoded off the event loop),
batcher.py (the queue and its forwards), answers.py (OIP and pipeline responses).
"""

from __future__ import annotations

import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

import pretune
from pretune.serve.answers import infer_answer, predict_answer
from pretune.serve.batcher import Batcher, QueueFull
from pretune.serve.config import ServeConfig
from pretune.serve.errors import ServeError
from pretune.serve.limits import Limits
from pretune.serve.metrics import ServeMetrics, access_line, access_logger
from pretune.serve.model import ServedModel
from pretune.serve.protocol import parse_infer, parse_predict
from pretune.serve.reading import parse_json, read_body

log = logging.getLogger("pretune.serve")
JSON_TYPES = ("application/json",)
OIP_TYPES = ("application/json", "application/octet-stream")  # tritonclient sends none at all
UNREAD_BODY = (408, 413)  # refused before the body was read whole: the connection cannot be reused


def create_app(model: ServedModel, cfg: ServeConfig) -> FastAPI:
    metrics = ServeMetrics()
    batcher = Batcher(model.predict, cfg.max_batch, cfg.max_wait_ms, cfg.max_queue, cfg.threads,
                      on_batch=metrics.observe_batch)
    limits = Limits(cfg, model.input_kind, len(model.input_names))

    @asynccontextmanager
    async def lifespan(app):
        limits.start()
        await batcher.start()
        yield
        await batcher.stop()  # uvicorn has let in-flight requests finish; their batches are done
        limits.stop()

    # redirect_slashes off: "/v2/health/ready/" gets the protocol's 404, not a redirect
    app = FastAPI(title=f"pretune serve: {model.name}", version=pretune.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None, redirect_slashes=False)
    app.state.model, app.state.batcher, app.state.metrics = model, batcher, metrics
    _handle_errors(app)
    account(app, metrics, access_logger() if cfg.access_log else None)

    async def predict(request: Request, inputs: list, pairs: list | None) -> list[dict]:
        request.state.inputs = len(inputs)
        try:
            return await batcher.submit(inputs, pairs)
        except QueueFull as e:
            raise ServeError(503, f"server busy: {e}", headers={"Retry-After": "1"}) from None

    def known(name: str) -> None:
        if name != model.name:
            raise ServeError(404, f"unknown model '{name}'; this server has '{model.name}'")

    @app.get("/v2/health/live")
    async def live():
        return {"live": True}

    @app.get("/v2/health/ready")
    async def ready():
        return {"ready": True}

    @app.get("/v2")
    async def server_metadata():
        return {"name": "pretune", "version": pretune.__version__, "extensions": ["binary_tensor_data"]}

    @app.get("/v2/models/{name}")
    async def model_metadata(name: str):
        known(name)
        return model.metadata()

    @app.get("/v2/models/{name}/ready")
    async def model_ready(name: str):
        known(name)
        return {"name": model.name, "ready": True}

    @app.post("/v2/models/{name}/infer")
    async def infer(name: str, request: Request):
        known(name)
        body = await read_body(request, OIP_TYPES, True, limits.max_body, cfg.header_timeout_s)
        parsed, tensors = parse_infer(body, request.headers.get("inference-header-content-length"),
                                      model.input_names)
        inputs = await limits.inputs(tensors[model.input_names[0]], model.input_names[0])
        pairs = await limits.inputs(tensors["text_pair"], "text_pair") if model.pairs else None
        if pairs is not None and len(pairs) != len(inputs):
            raise ServeError(400, f"{len(inputs)} texts but {len(pairs)} text_pair elements")
        return infer_answer(model, parsed, await predict(request, inputs, pairs))

    @app.post("/predict")
    async def predict_pipeline(request: Request):
        body = await read_body(request, JSON_TYPES, False, limits.max_body, cfg.header_timeout_s)
        texts, pairs, one, parameters = parse_predict(parse_json(body), model.pairs)
        top_k = parameters.get("top_k", "default")
        if top_k != "default" and top_k is not None and not (isinstance(top_k, int) and top_k > 0):
            raise ServeError(400, f"top_k must be a positive integer or null, not {top_k!r}")
        inputs = await limits.inputs(texts, "inputs")
        results = await predict(request, inputs, await limits.inputs(pairs, "text_pair") if pairs else None)
        return predict_answer(model, results, top_k, one)

    @app.get("/metrics")
    async def prometheus():
        metrics.queued.set(batcher.queued)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def account(app: FastAPI, metrics: ServeMetrics, access: logging.Logger | None) -> None:
    """Each request counted (route, code, latency) and, with `access`, logged as one JSON line."""

    @app.middleware("http")
    async def accounted(request: Request, call_next):
        start = time.perf_counter()
        try:
            response = await call_next(request)
        except Exception:  # a bug: the traceback goes to the log, the client gets one JSON line
            log.exception("error answering %s %s", request.method, request.url.path)
            request.state.error = "internal server error"
            response = JSONResponse({"error": "internal server error"}, 500)
        seconds = time.perf_counter() - start
        route = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.observe_request(route, response.status_code, seconds)
        if access is not None:
            access.info(access_line(request.method, request.url.path, route, response.status_code, seconds,
                                    request.client.host if request.client else None,
                                    getattr(request.state, "inputs", None), getattr(request.state, "error", None)))
        return response


def _handle_errors(app: FastAPI) -> None:
    """Refusals and unknown routes / methods as `{"error": "..."}`, the OIP error shape."""

    @app.exception_handler(ServeError)
    async def refused(request: Request, e: ServeError):
        request.state.error = e.message
        headers = dict(e.headers or {})
        if e.status in UNREAD_BODY:  # what is left of the body would be read as the next request
            headers["connection"] = "close"
        return JSONResponse({"error": e.message}, e.status, headers=headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):
        if e.status_code == 404:
            message = f"no route {request.method} {request.url.path}; routes: /v2, /v2/health/live, " \
                      "/v2/health/ready, /v2/models/NAME[/ready|/infer], /predict, /metrics"
        elif e.status_code == 405:
            allowed = (getattr(e, "headers", None) or {}).get("Allow", "")
            message = f"method {request.method} not allowed on {request.url.path}; allowed: {allowed}"
        else:
            message = str(e.detail)
        request.state.error = message
        return JSONResponse({"error": message}, e.status_code, headers=getattr(e, "headers", None))
