"""The two wire formats: Open Inference Protocol V2 (KServe, Triton, Seldon MLServer) and the
Hugging Face `pipeline` request shape of `POST /predict`. Pure functions from request bodies to
inputs and from `pretune predict` results to response bodies (each task shapes its own
`pipeline` answer: Task.pipeline_answer); every refusal is a ServeError with the HTTP status
it gets.

OIP requests come as JSON, or as JSON followed by raw tensor bytes (Triton's binary tensor
extension, which `tritonclient` uses by default): the header `Inference-Header-Content-Length`
says where the JSON ends, and each input with a `binary_data_size` parameter takes its bytes
from the rest, BYTES elements each prefixed by a 4-byte little-endian length.
"""

from __future__ import annotations

import base64
import json
import struct

import numpy as np

from pretune.serve.errors import ServeError
from pretune.serve.reading import parse_json

__all__ = ["ServeError", "decode_image_text", "infer_response", "parse_infer", "parse_json", "parse_predict"]


# -- Open Inference Protocol V2 -----------------------------------------------------------------

def parse_infer(body: bytes, header_length: str | None, input_names: tuple[str, ...]) -> tuple[dict, dict]:
    """The request's JSON and, per input name, its elements (bytes or str) in row-major order."""
    binary = b""
    if header_length is not None:
        try:
            n = int(header_length)
        except ValueError:
            raise ServeError(400, f"Inference-Header-Content-Length is not a number: {header_length!r}") from None
        if not 0 < n <= len(body):
            raise ServeError(400, f"Inference-Header-Content-Length {n} does not fit a body of {len(body)} bytes")
        body, binary = body[:n], body[n:]
    request = parse_json(body)
    if not isinstance(request, dict) or not isinstance(request.get("inputs"), list) or not request["inputs"]:
        raise ServeError(400, "an inference request needs a non-empty 'inputs' list")
    tensors, offset = {}, 0
    for tensor in request["inputs"]:
        if not isinstance(tensor, dict) or not isinstance(tensor.get("name"), str):
            raise ServeError(400, "each input needs a 'name'")
        name = tensor["name"]
        if name not in input_names:
            raise ServeError(400, f"unknown input '{name}'; this model takes {', '.join(input_names)}")
        if tensor.get("datatype") != "BYTES":
            raise ServeError(400, f"input '{name}' must have datatype BYTES, not {tensor.get('datatype')!r}")
        shape = tensor.get("shape")
        if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
            raise ServeError(400, f"input '{name}' needs a shape: a list of non-negative integers")
        parameters = tensor.get("parameters") or {}
        if not isinstance(parameters, dict):
            raise ServeError(400, f"input '{name}': 'parameters' must be an object")
        size = parameters.get("binary_data_size")
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise ServeError(400, f"input '{name}': binary_data_size {size!r} runs past the body")
            elements = _bytes_elements(binary[offset:offset + size], name)
            offset += size
        elif "data" in tensor:
            elements = _flat(tensor["data"], name)
        else:
            raise ServeError(400, f"input '{name}' has neither 'data' nor binary data")
        if len(elements) != int(np.prod(shape)):
            raise ServeError(400, f"input '{name}' has {len(elements)} elements but shape {shape}")
        tensors[name] = elements
    missing = [n for n in input_names if n not in tensors]
    if missing:
        raise ServeError(400, f"missing input(s) {', '.join(missing)}")
    return request, tensors


def _bytes_elements(raw: bytes, name: str) -> list[bytes]:
    out, i = [], 0
    while i < len(raw):
        if i + 4 > len(raw):
            raise ServeError(400, f"input '{name}': truncated BYTES element length")
        (length,) = struct.unpack_from("<I", raw, i)
        if i + 4 + length > len(raw):
            raise ServeError(400, f"input '{name}': a BYTES element runs past its data")
        out.append(raw[i + 4:i + 4 + length])
        i += 4 + length
    return out


def _flat(data, name: str) -> list:
    if not isinstance(data, list):
        data = [data]
    out = []
    for item in data:
        if isinstance(item, list):
            out += _flat(item, name)
        elif isinstance(item, str):
            out.append(item)
        else:
            raise ServeError(400, f"input '{name}': BYTES data must be strings, got {type(item).__name__}")
    return out


def infer_response(model_name: str, request_id, outputs: tuple[tuple[str, str], ...], wanted: list | None,
                   results: list[dict], label_names: list[str] | None) -> dict:
    """The OIP response: the requested outputs (all by default), each a tensor with a row per input."""
    known = [n for n, _ in outputs]
    if wanted is not None:
        names = [o.get("name") if isinstance(o, dict) else None for o in wanted]
        unknown = [n for n in names if n not in known]
        if unknown:
            raise ServeError(400, f"unknown output {unknown[0]!r}; this model gives {', '.join(known)}")
    else:
        names = known
    types = dict(outputs)
    body = {"model_name": model_name, "model_version": "1",
            "outputs": [_tensor(n, types[n], results, label_names) for n in names]}
    if request_id is not None:
        body["id"] = request_id
    return body


def _tensor(name: str, datatype: str, results: list[dict], label_names: list[str] | None) -> dict:
    if name == "scores":  # one column per label, in the metadata's label order
        data = [r["scores"][label] for r in results for label in label_names]
        shape = [len(results), len(label_names)]
    elif datatype == "BYTES" and name != "label":  # a list per input (labels, entity spans, tags): JSON text
        data, shape = [json.dumps(r[name]) for r in results], [len(results)]
    else:
        data, shape = [r[name] for r in results], [len(results)]
    return {"name": name, "datatype": datatype, "shape": shape, "data": data}


# -- Hugging Face pipeline shape ----------------------------------------------------------------

def parse_predict(request: object, pairs: bool) -> tuple[list, list | None, bool, dict]:
    """`{"inputs": x | [x, ...], "parameters": {...}}` -> (inputs, pairs, one_input, parameters).
    A pair model takes `{"text": ..., "text_pair": ...}` items, as `pipeline` does."""
    if not isinstance(request, dict) or "inputs" not in request:
        raise ServeError(400, "the body must be a JSON object with 'inputs'")
    parameters = request.get("parameters") or {}
    if not isinstance(parameters, dict):
        raise ServeError(400, "'parameters' must be an object")
    unknown = sorted(set(parameters) - {"top_k"})
    if unknown:
        raise ServeError(400, f"unknown parameter {unknown[0]!r}; known: top_k")
    given = request["inputs"]
    one = not isinstance(given, list)
    items = [given] if one else given
    if not items:
        raise ServeError(400, "'inputs' is an empty list")
    texts, text_pairs = [], []
    for item in items:
        if pairs:
            if not (isinstance(item, dict) and isinstance(item.get("text"), str)
                    and isinstance(item.get("text_pair"), str)):
                raise ServeError(400, "this model reads text pairs: give {'text': ..., 'text_pair': ...} items")
            texts.append(item["text"]), text_pairs.append(item["text_pair"])
        elif isinstance(item, str):
            texts.append(item)
        else:
            raise ServeError(400, f"each input must be a string, got {type(item).__name__}")
    return texts, (text_pairs if pairs else None), one, parameters


def decode_image_text(value: str) -> bytes:
    """An image sent inside JSON: base64 text (as `pipeline` accepts), optionally a data: URL."""
    if value.startswith("data:") and "," in value:
        value = value.split(",", 1)[1]
    try:
        return base64.b64decode(value, validate=True)
    except ValueError:
        raise ServeError(400, "an image inside JSON must be base64 text") from None
