"""How a run is served: address, batching, limits. Not part of a recipe: one run is served
many ways (a laptop, a container behind a load balancer) without changing what it is."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from pretune.errors import PretuneError


class ServeConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host: str = Field("127.0.0.1", description="address to bind; loopback unless told otherwise")
    port: int = Field(8000, ge=0, le=65535, description="port to bind (0: a free one, printed at start)")
    name: str | None = Field(None, description="model name in /v2/models/NAME (default: the run's folder name)")
    max_batch: int = Field(32, gt=0, description="most inputs run together in one forward pass")
    max_wait_ms: float = Field(5.0, ge=0, description="how long a queued request waits for others to join it")
    threads: int = Field(1, gt=0, description="inference threads: batches that may run at the same time")
    max_queue: int = Field(512, gt=0, description="inputs waiting at most; beyond, requests get 503 with Retry-After")
    max_inputs: int = Field(256, gt=0, description="most inputs in one request")
    max_text_bytes: int = Field(100_000, gt=0, description="largest text (UTF-8 bytes) or encoded image in a request")
    max_image_pixels: int = Field(4096 * 4096, gt=0, description="largest image (width x height) decoded; "
                                  "beyond, 413 before a pixel is decoded")
    max_connections: int = Field(4096, gt=0, description="open connections at most (fewer if the file "
                                 "descriptors run short); beyond, the oldest idle one is closed")
    header_timeout_s: float = Field(10.0, gt=0, description="seconds a client has to send a request's head, "
                                    "and between two parts of its body")
    access_log: bool = Field(True, description="one JSON line per request on stderr")

    @model_validator(mode="after")
    def _fits_the_queue(self) -> ServeConfig:
        if self.max_inputs > self.max_queue:
            raise ValueError(f"max_inputs ({self.max_inputs}) exceeds max_queue ({self.max_queue}): "
                             "such a request could never be queued")
        return self


def serve_config(**options) -> ServeConfig:
    """A ServeConfig from keyword options, its validation errors as one PretuneError line."""
    from pydantic import ValidationError

    try:
        return ServeConfig(**{k: v for k, v in options.items() if v is not None})
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(map(str, first["loc"]))
        message = first["msg"].removeprefix("Value error, ")
        raise PretuneError(f"serve: {where}: {message}" if where else f"serve: {message}") from None
