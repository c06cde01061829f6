"""The HTTP application (FastAPI): Open Inference Protocol V2 routes, `POST /predict` in the
Hugging Face pipeline shape, `/metrics`, health. Every refusal is a 4xx with a JSON body
`{"error": "..."}` (the OIP error shape); a bug is a 500 with the same shape, its traceback
logged, never sent.
"""

from __future__ import annotations

import io
import logging
import time
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException

import pretune
from pretune.serve.batcher import Batcher, QueueFull
from pretune.serve.config import ServeConfig
from pretune.serve.metrics import ServeMetrics, access_line, access_logger
from pretune.serve.model import ServedModel
from pretune.serve.protocol import (
    ServeError,
    decode_image_text,
    infer_response,
    parse_infer,
    parse_json,
    parse_predict,
)

log = logging.getLogger("pretune.serve")
JSON_TYPES = ("application/json",)
OIP_TYPES = ("application/json", "application/octet-stream")  # tritonclient sends none at all


def create_app(model: ServedModel, cfg: ServeConfig) -> FastAPI:
    metrics = ServeMetrics()
    batcher = Batcher(model.predict, cfg.max_batch, cfg.max_wait_ms, cfg.max_queue, cfg.threads,
                      on_batch=metrics.observe_batch)
    access = access_logger() if cfg.access_log else None
    # A body past this cannot be a valid request: refused before it is read.
    max_body = cfg.max_inputs * (cfg.max_text_bytes + 64) * len(model.input_names) + 65536

    @asynccontextmanager
    async def lifespan(app):
        await batcher.start()
        yield
        await batcher.stop()  # uvicorn has let in-flight requests finish; their batches are done

    app = FastAPI(title=f"pretune serve: {model.name}", version=pretune.__version__, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.model, app.state.batcher, app.state.metrics = model, batcher, metrics

    @app.exception_handler(ServeError)
    async def refused(request: Request, e: ServeError):
        request.state.error = e.message
        return JSONResponse({"error": e.message}, e.status, headers=e.headers)

    @app.exception_handler(HTTPException)
    async def http_error(request: Request, e: HTTPException):  # unknown path, wrong method
        request.state.error = str(e.detail)
        return JSONResponse({"error": str(e.detail)}, e.status_code, headers=getattr(e, "headers", None))

    @app.middleware("http")
    async def account(request: Request, call_next):
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

    async def read_body(request: Request, types: tuple[str, ...], optional: bool) -> bytes:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if not (kind in types or (optional and not kind)):
            raise ServeError(415, f"content type {kind or 'none'!r} not accepted; send {' or '.join(types)}")
        length = request.headers.get("content-length")
        if length and length.isdigit() and int(length) > max_body:
            raise ServeError(413, f"request body of {length} bytes; at most {max_body}")
        body = await request.body()
        if len(body) > max_body:
            raise ServeError(413, f"request body of {len(body)} bytes; at most {max_body}")
        return body

    def checked(values: list, name: str) -> list:
        """Texts as str, images as decoded PIL images; sizes and counts within the limits."""
        if not values:
            raise ServeError(400, f"input '{name}' is empty")
        if len(values) > cfg.max_inputs:
            raise ServeError(413, f"{len(values)} inputs in one request; at most {cfg.max_inputs}")
        out = []
        for i, value in enumerate(values):
            if model.input_kind == "image":
                value = decode_image_text(value) if isinstance(value, str) else value
            elif isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise ServeError(400, f"input '{name}' element {i} is not UTF-8 text") from None
            size = len(value) if isinstance(value, bytes) else len(value.encode("utf-8"))
            if size > cfg.max_text_bytes:
                raise ServeError(413, f"input '{name}' element {i} has {size} bytes; at most {cfg.max_text_bytes}")
            out.append(open_image(value, name, i) if model.input_kind == "image" else value)
        return out

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
        body = await read_body(request, OIP_TYPES, optional=True)
        parsed, tensors = parse_infer(body, request.headers.get("inference-header-content-length"),
                                      model.input_names)
        inputs = checked(tensors[model.input_names[0]], model.input_names[0])
        pairs = checked(tensors["text_pair"], "text_pair") if model.pairs else None
        if pairs is not None and len(pairs) != len(inputs):
            raise ServeError(400, f"{len(inputs)} texts but {len(pairs)} text_pair elements")
        wanted = parsed.get("outputs")
        if wanted is not None and not isinstance(wanted, list):
            raise ServeError(400, "'outputs' must be a list")
        results = await predict(request, inputs, pairs)
        return infer_response(model.name, parsed.get("id"), model.outputs, wanted, results, model.label_names)

    @app.post("/predict")
    async def predict_pipeline(request: Request):
        body = await read_body(request, JSON_TYPES, optional=False)
        texts, pairs, one, parameters = parse_predict(parse_json(body), model.pairs)
        top_k = parameters.get("top_k", "default")
        if top_k != "default" and top_k is not None and not (isinstance(top_k, int) and top_k > 0):
            raise ServeError(400, f"top_k must be a positive integer or null, not {top_k!r}")
        inputs = checked(texts, "inputs")
        results = await predict(request, inputs, checked(pairs, "text_pair") if pairs else None)
        answers = [model.task.pipeline_answer(r, top_k) for r in results]
        # pipeline's shapes: a list of labels (or entities) for one input; one top label per
        # input for a list of texts, unless top_k asks for more.
        if one:
            return answers[0]
        flat = model.task.pipeline_flat and top_k == "default"
        return [a[0] for a in answers] if flat else answers

    @app.get("/metrics")
    async def prometheus():
        metrics.queued.set(batcher.queued)
        return Response(metrics.exposition(), media_type="text/plain; version=0.0.4; charset=utf-8")

    return app


def open_image(data: bytes, name: str, i: int):
    """An encoded image file (PNG, JPEG, ...) as a decoded RGB PIL image; not one: a 400."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as image:
            image.load()
            return image.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        reason = str(e).splitlines()[0]
        raise ServeError(400, f"input '{name}' element {i} is not a readable image ({reason})") from None
