"""Answers: `pretune predict`'s results as an OIP V2 response (JSON, or Triton's binary tensor
extension for the outputs a client asks to get in binary) and as `transformers.pipeline`'s shape
for `POST /predict`.

Binary outputs (what `tritonclient` asks for by default: `binary_data_output` on the request, or
`binary_data` on each requested output): the JSON header lists each such output with a
`binary_data_size` parameter and no `data`; its bytes follow the header in the order listed,
FP32 as little-endian floats in row-major order, BYTES as elements each prefixed by a 4-byte
little-endian length; the header's length is in `Inference-Header-Content-Length`.
"""

from __future__ import annotations

import json
import struct

import numpy as np
from fastapi.responses import JSONResponse, Response

from pretune.serve.errors import ServeError
from pretune.serve.protocol import infer_response

# Triton's classification extension and shared-memory outputs: refused by name, not ignored.
UNSUPPORTED = {"classification", "shared_memory_region", "shared_memory_byte_size", "shared_memory_offset"}


def infer_answer(model, request: dict, results: list[dict]) -> Response:
    wanted = request.get("outputs")
    if wanted is not None and not isinstance(wanted, list):
        raise ServeError(400, "'outputs' must be a list")
    body = infer_response(model.name, request.get("id"), model.outputs, wanted, results, model.label_names)
    binary = binary_outputs(request, wanted, [t["name"] for t in body["outputs"]])
    if not binary:
        return JSONResponse(body)
    raw = []
    for tensor in body["outputs"]:
        if tensor["name"] in binary:
            data = tensor.pop("data")
            raw.append(_bytes_tensor(data) if tensor["datatype"] == "BYTES" else
                       np.asarray(data, dtype="<f4").tobytes())
            tensor["parameters"] = {"binary_data_size": len(raw[-1])}
    header = json.dumps(body, ensure_ascii=False, allow_nan=False).encode("utf-8")
    return Response(header + b"".join(raw), media_type="application/octet-stream",
                    headers={"Inference-Header-Content-Length": str(len(header))})


def binary_outputs(request: dict, wanted: list | None, names: list[str]) -> set[str]:
    """The names of the outputs to send as binary tensors: those requested with `binary_data`,
    or, with no `outputs` list, all of them (`names`) when the request's `binary_data_output` says so."""
    default = _flag(request.get("parameters"), "binary_data_output", "the request")
    if wanted is None:
        return set(names) if default else set()
    names = set()
    for output in wanted:
        asked = output.get("parameters") if isinstance(output.get("parameters"), dict) else {}
        unsupported = sorted(set(asked) & UNSUPPORTED)
        if unsupported:
            raise ServeError(400, f"output {output['name']!r}: parameter {unsupported[0]!r} is not supported here; "
                                  "outputs come as JSON or binary tensors (binary_data)")
        if _flag(output.get("parameters"), "binary_data", f"output {output.get('name')!r}", default):
            names.add(output["name"])
    return names


def _flag(parameters, key: str, where: str, default: bool = False) -> bool:
    if parameters is None:
        return default
    if not isinstance(parameters, dict):
        raise ServeError(400, f"'parameters' of {where} must be an object")
    value = parameters.get(key, default)
    if not isinstance(value, bool):
        raise ServeError(400, f"'{key}' of {where} must be true or false, not {value!r}")
    return value


def _bytes_tensor(data: list) -> bytes:
    out = []
    for element in data:
        encoded = element.encode("utf-8")
        out += [struct.pack("<I", len(encoded)), encoded]
    return b"".join(out)


def predict_answer(model, results: list[dict], top_k, one: bool):
    answers = [model.task.pipeline_answer(r, top_k) for r in results]
    # pipeline's shapes: a list of labels (or entities) for one input; one top label per
    # input for a list of texts, unless top_k asks for more.
    if one:
        return answers[0]
    flat = model.task.pipeline_flat and top_k == "default"
    return [a[0] for a in answers] if flat else answers
