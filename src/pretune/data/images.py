"""Images in: decode (files or arrays) to RGB at the model's input size, and read the usual
layouts (a folder per label, a table of paths, IDX files) into a frame of `image` / `label`.

Images are decoded and resized once, up front, and kept as uint8 (a quarter of float32's
memory); normalisation and augmentation happen per batch (data/augment.py), on tensors, in the
training process. Many image files are decoded in torch DataLoader worker processes (one per
core), so that every core decodes; arrays and small sets are decoded in place.
"""

from __future__ import annotations

import gzip
import json
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from pretune.errors import PretuneError

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PREPROCESSOR_FILE = "preprocessor_config.json"
# Pillow's own decompression-bomb threshold (it only warns up to twice this): an image past it
# would take gigabytes to decode only to be shrunk to a few hundred pixels a side.
MAX_IMAGE_PIXELS = 89_478_485


@dataclass
class ImageSettings:
    """What the model expects: a square side in pixels and the per-channel mean / std of
    [0, 1] RGB. Plays the tokenizer's part for images: saved beside the model
    (preprocessor_config.json, Hugging Face's keys) and read back by predict."""

    size: int = 224
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD

    pad_token_id = 0  # nothing is padded; FitParts.pad_id reads it

    def save_pretrained(self, directory) -> None:
        # ViTImageProcessor does exactly this (resize to a square, rescale, normalise), so
        # transformers' AutoImageProcessor reads the file too.
        config = {"image_processor_type": "ViTImageProcessor", "do_resize": True, "resample": 2,
                  "size": {"height": self.size, "width": self.size}, "do_rescale": True,
                  "rescale_factor": 1 / 255, "do_normalize": True, "image_mean": list(self.mean),
                  "image_std": list(self.std)}
        (Path(directory) / PREPROCESSOR_FILE).write_text(json.dumps(config, indent=2))

    @classmethod
    def from_hf(cls, config: dict, size: int | None = None) -> ImageSettings:
        """From a Hugging Face preprocessor_config.json's dict; `size` overrides its size."""
        if size is None:
            given = config.get("size", config.get("crop_size", 224))
            if isinstance(given, dict):
                given = given.get("height") or given.get("shortest_edge") or 224
            size = int(given)
        mean, std = config.get("image_mean", IMAGENET_MEAN), config.get("image_std", IMAGENET_STD)
        return cls(size, tuple(map(float, mean)), tuple(map(float, std)))

    @classmethod
    def from_dir(cls, directory: str | Path, size: int | None = None, default_size: int = 224) -> ImageSettings:
        path = Path(directory) / PREPROCESSOR_FILE
        if not path.is_file():
            return cls(size or default_size)
        return cls.from_hf(json.loads(path.read_text()), size)


def to_rgb(image, where: str) -> np.ndarray:
    """One image (a path, a PIL image, or an array HxW / HxWxC) as an HxWx3 uint8 array."""
    from PIL import Image, UnidentifiedImageError

    if isinstance(image, (str, Path)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                with Image.open(image) as opened:
                    check_image_size(opened.size, image, where)
                    opened.load()  # decode now: a truncated file fails here, named
                    return np.asarray(opened.convert("RGB"))
        except (Image.DecompressionBombError, Image.DecompressionBombWarning):
            raise PretuneError(f"{where}: image {image} has more than {MAX_IMAGE_PIXELS:,} pixels, the limit "
                               "against decompression bombs; resize it first") from None
        except FileNotFoundError:
            raise PretuneError(f"{where}: image file not found: {image}") from None
        except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
            raise PretuneError(f"{where}: cannot read image {image} ({str(e).splitlines()[0]})") from None
    if isinstance(image, Image.Image):
        check_image_size(image.size, "the given image", where)
        return np.asarray(image.convert("RGB"))
    array = np.asarray(image)
    if array.dtype.kind == "f":  # floats are taken as [0, 1] when they fit, else [0, 255]
        array = array * 255.0 if array.size and array.max() <= 1.0 else array
        array = np.clip(np.rint(array), 0, 255)
    array = array.astype(np.uint8)
    if array.ndim == 3 and array.shape[0] in (1, 3) and array.shape[-1] not in (1, 3, 4):
        array = array.transpose(1, 2, 0)  # channels first (CxHxW), as torch keeps them
    if array.ndim == 2:
        return np.repeat(array[:, :, None], 3, axis=2)
    if array.ndim == 3 and array.shape[2] == 1:
        return np.repeat(array, 3, axis=2)
    if array.ndim == 3 and array.shape[2] in (3, 4):
        return array[:, :, :3]  # RGBA: the alpha channel carries no class
    raise PretuneError(f"{where}: an image of shape {array.shape} cannot be turned into RGB "
                       f"(need HxW, HxWx1, HxWx3 or HxWx4)")


def check_image_size(size: tuple[int, int], image, where: str) -> None:
    width, height = size
    if width * height > MAX_IMAGE_PIXELS:
        raise PretuneError(f"{where}: image {image} is {width:,} x {height:,}: more than {MAX_IMAGE_PIXELS:,} "
                           "pixels, the limit against decompression bombs; resize it first")


WORKER_THRESHOLD = 512  # image files below this decode in place: starting workers costs more


def decode_one(image, size: int, where: str) -> torch.Tensor:
    """One image as a (3, size, size) uint8 tensor (bilinear resize)."""
    from PIL import Image

    rgb = to_rgb(image, where)
    if rgb.shape[:2] != (size, size):
        rgb = np.asarray(Image.fromarray(rgb).resize((size, size), Image.Resampling.BILINEAR))
    return torch.from_numpy(np.array(rgb, copy=True)).permute(2, 0, 1)  # PIL arrays are read-only


class _ImageFiles(torch.utils.data.Dataset):
    """Files decoded in DataLoader workers; an error comes back as its message (a worker's
    exception would reach the user wrapped in a traceback, not as one line)."""

    def __init__(self, images: list, size: int, where: str):
        self.images, self.size, self.where = images, size, where

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int):
        try:
            return decode_one(self.images[i], self.size, f"{self.where} row {i}")
        except PretuneError as e:
            return str(e)


def decode_images(images: list, size: int, where: str, workers: int | None = None) -> torch.Tensor:
    """Decode and resize to an (n, 3, size, size) uint8 tensor; many files in worker processes."""
    import os

    out = torch.empty((len(images), 3, size, size), dtype=torch.uint8)
    workers = min(4, os.cpu_count() or 1) if workers is None else workers
    files = len(images) >= WORKER_THRESHOLD and all(isinstance(x, (str, Path)) for x in images)
    if not files or workers < 2:
        for i, image in enumerate(images):
            out[i] = decode_one(image, size, f"{where} row {i}")
        return out
    loader = torch.utils.data.DataLoader(_ImageFiles(images, size, where), batch_size=None, num_workers=workers)
    for i, item in enumerate(loader):
        if isinstance(item, str):
            raise PretuneError(item)
        out[i] = item
    return out


def list_images(root: str | Path) -> list[Path]:
    """Image files under `root` (a file is itself), in a stable order."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise PretuneError(f"no such image file or folder: {root}")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise PretuneError(f"{root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def read_image_folder(root: str | Path, image_column: str = "image", label_column: str = "label") -> pd.DataFrame:
    """`root/<label>/<file>` as a frame of image paths and labels (the folder names)."""
    root = Path(root)
    folders = sorted(p for p in root.iterdir() if p.is_dir())
    rows = [{image_column: str(f), label_column: folder.name}
            for folder in folders for f in sorted(folder.rglob("*"))
            if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file()]
    if not rows:
        raise PretuneError(f"{root}: no images in label folders (expected {root}/<label>/<image>.png|jpg)")
    return pd.DataFrame(rows)


def resolve_paths(frame: pd.DataFrame, column: str, base: Path) -> pd.DataFrame:
    """Relative image paths in a table are relative to the table's own folder."""
    if column in frame.columns:
        frame = frame.copy()
        frame[column] = [str(base / v) if isinstance(v, str) and not Path(v).is_absolute() else v
                         for v in frame[column]]
    return frame


IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST's format; gzip or plain) as an array of its stated shape."""
    path = Path(path)
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as e:
        raise PretuneError(f"cannot read IDX file {path}: {e}") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_TYPES:
        raise PretuneError(f"{path} is not an IDX file (bad magic number)")
    dims = raw[3]
    shape = tuple(int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(dims))
    dtype = np.dtype(IDX_TYPES[raw[2]])
    count = int(np.prod(shape)) if shape else 0
    start = 4 + 4 * dims
    if len(raw) - start < count * dtype.itemsize:
        raise PretuneError(f"{path} is truncated: the header promises {shape}")
    return np.frombuffer(raw, dtype, count, start).reshape(shape)


def read_idx_pair(images_path: str | Path, image_column: str = "image", label_column: str = "label") -> pd.DataFrame:
    """`*-images-idx3-ubyte[.gz]` and the `*-labels-idx1-ubyte[.gz]` beside it, as a frame."""
    images_path = Path(images_path)
    labels_path = images_path.with_name(images_path.name.replace("images-idx3", "labels-idx1"))
    if labels_path == images_path or not labels_path.is_file():
        raise PretuneError(f"{images_path}: no labels file beside it ({labels_path.name})")
    images, labels = read_idx(images_path), read_idx(labels_path)
    if len(images) != len(labels):
        raise PretuneError(f"{images_path} holds {len(images)} images but {labels_path.name} {len(labels)} labels")
    return pd.DataFrame({image_column: list(images), label_column: labels.astype(np.int64)})


def is_idx(path: str | Path) -> bool:
    return "idx3-ubyte" in Path(path).name
