"""Reading a request: its content type, its body (counted while it streams in, so an oversized
or stalled body is refused before it is held), and its JSON (depth bounded, text valid Unicode).
Every refusal is a ServeError with its HTTP status."""

from __future__ import annotations

import asyncio
import json
import re

from pretune.serve.errors import ServeError

MAX_JSON_DEPTH = 32  # an OIP request is 4 levels deep (body, inputs, tensor, data); /predict 3
# Surrogates cannot be encoded as UTF-8: JSON can spell them ("\udfff") but no answer can echo them.
_SURROGATE = re.compile("[\ud800-\udfff]")


async def read_body(request, types: tuple[str, ...], optional: bool, max_body: int, idle_timeout: float) -> bytes:
    """The body, at most `max_body` bytes (413 as soon as more arrive, the rest never read into
    memory); a client that sends nothing for `idle_timeout` seconds gets 408, one that leaves
    mid-body a 400 nobody reads."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if not (kind in types or (optional and not kind)):
        raise ServeError(415, f"content type {kind or 'none'!r} not accepted; send {' or '.join(types)}")
    length = request.headers.get("content-length")
    if length and length.isdigit() and int(length) > max_body:
        raise ServeError(413, f"request body of {length} bytes; at most {max_body}")
    chunks, size = [], 0
    while True:
        try:  # the ASGI receive itself, not Request.stream(): a generator cancelled mid-await is unusable
            message = await asyncio.wait_for(request.receive(), idle_timeout)
        except asyncio.TimeoutError:
            raise ServeError(408, f"no body bytes for {idle_timeout:g} s") from None
        if message["type"] == "http.disconnect":
            raise ServeError(400, "the client closed the connection before its body ended")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > max_body:
            raise ServeError(413, f"request body over {max_body} bytes")
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def parse_json(body: bytes) -> object:
    """Strict JSON no deeper than MAX_JSON_DEPTH, every string valid Unicode; else a 400."""
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ServeError(400, f"malformed JSON: {e}") from None
    except RecursionError:  # json's C scanner recurses once per level
        raise ServeError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels") from None
    check_json(value)
    return value


def check_json(value: object) -> None:
    """Walks `value` without recursion: depth and Unicode, as parse_json promises."""
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if _SURROGATE.search(item):
                raise ServeError(400, "a JSON string holds a lone surrogate (\\ud800-\\udfff): not valid Unicode")
            continue
        if not isinstance(item, list | dict):
            continue
        if depth > MAX_JSON_DEPTH:
            raise ServeError(400, f"JSON nested deeper than {MAX_JSON_DEPTH} levels")
        if isinstance(item, dict):
            stack.extend((k, depth) for k in item)
            item = item.values()
        stack.extend((x, depth + 1) for x in item)
