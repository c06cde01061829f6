"""What one request may hold: its body size, its number of inputs, each text's size, each image's
bytes and pixels. Images are decoded here, in a small thread pool of their own: a decode takes
up to a second, and on the event loop it would stall every other client (health included)."""

from __future__ import annotations

import asyncio
import io
from concurrent.futures import ThreadPoolExecutor

from pretune.serve.config import ServeConfig
from pretune.serve.errors import ServeError
from pretune.serve.protocol import decode_image_text

# Raster formats only: PIL's EPS plugin would start Ghostscript on an untrusted file.
IMAGE_FORMATS = ("PNG", "JPEG", "WEBP", "GIF", "BMP", "TIFF", "PPM")


class Limits:
    """`await limits.inputs(values, name)` -> texts as str or images as RGB PIL images, each
    within the limits; anything else a ServeError (400 malformed, 413 too large)."""

    def __init__(self, cfg: ServeConfig, input_kind: str, input_count: int):
        self.max_inputs, self.max_text_bytes = cfg.max_inputs, cfg.max_text_bytes
        self.max_image_pixels, self.decode_threads = cfg.max_image_pixels, cfg.threads
        self.image = input_kind == "image"
        # A body past this cannot be a valid request: refused as soon as that many bytes arrived.
        self.max_body = cfg.max_inputs * (cfg.max_text_bytes + 64) * input_count + 65536
        self._decoder: ThreadPoolExecutor | None = None

    def start(self) -> None:
        if self.image:  # as many decoders as inference threads: decoded images wait no longer than that
            self._decoder = ThreadPoolExecutor(self.decode_threads, thread_name_prefix="pretune-decode")

    def stop(self) -> None:
        if self._decoder is not None:
            self._decoder.shutdown(wait=True)

    async def inputs(self, values: list, name: str) -> list:
        if self._decoder is None:
            return self.checked(values, name)
        return await asyncio.get_running_loop().run_in_executor(self._decoder, self.checked, values, name)

    def checked(self, values: list, name: str) -> list:
        """Texts as str, images as decoded PIL images; sizes and counts within the limits."""
        if not values:
            raise ServeError(400, f"input '{name}' is empty")
        if len(values) > self.max_inputs:
            raise ServeError(413, f"{len(values)} inputs in one request; at most {self.max_inputs}")
        out = []
        for i, value in enumerate(values):
            if self.image:
                value = decode_image_text(value) if isinstance(value, str) else value
            elif isinstance(value, bytes):
                try:
                    value = value.decode("utf-8")
                except UnicodeDecodeError:
                    raise ServeError(400, f"input '{name}' element {i} is not UTF-8 text") from None
            try:
                size = len(value) if isinstance(value, bytes) else len(value.encode("utf-8"))
            except UnicodeEncodeError:  # a lone surrogate: no tokenizer (and no answer) can hold it
                raise ServeError(400, f"input '{name}' element {i} is not valid Unicode") from None
            if size > self.max_text_bytes:
                raise ServeError(413, f"input '{name}' element {i} has {size} bytes; at most {self.max_text_bytes}")
            out.append(self.open_image(value, name, i) if self.image else value)
        return out

    def open_image(self, data: bytes, name: str, i: int):
        """An encoded image file as a decoded RGB PIL image; its size is read from the header
        and checked before a pixel is decoded. Not an image: 400; too many pixels: 413."""
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data), formats=IMAGE_FORMATS) as image:
                width, height = image.size
                if width * height > self.max_image_pixels:
                    raise ServeError(413, f"input '{name}' element {i} is {width}x{height} pixels; at most "
                                          f"{self.max_image_pixels} pixels")
                image.load()
                return image.convert("RGB")
        except Image.DecompressionBombError as e:  # PIL's own ceiling (~179 M pixels), checked as it opens
            raise ServeError(413, f"input '{name}' element {i}: {e}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise ServeError(400, f"input '{name}' element {i} is not a readable image ({reason})") from None
