"""`environment.json`: the machine and software a fit (or a compression) ran on, written beside its
results so that a report read later, on another machine, still says where the figures came from."""

from __future__ import annotations

import os
import platform
import sys
from importlib import metadata
from pathlib import Path

from pretune import atomic, runs

ENVIRONMENT = runs.ENVIRONMENT
# The instruction-set extensions that change CPU speed for this work (vector width, int8 / bf16 units).
FLAGS = ("sse4_2", "avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_tile",
         "amx_int8", "amx_bf16", "neon", "asimd", "sve")
PACKAGES = ("pretune", "torch", "transformers", "accelerate", "onnxruntime", "optuna", "peft")


def describe() -> dict:
    return {"cpu": _cpu_name(), "cpu_flags": _cpu_flags(), "cores": os.cpu_count(), "gpu": _gpu(),
            "python": sys.version.split()[0], "platform": platform.platform(terse=True),
            "versions": {name: _version(name) for name in PACKAGES if _version(name)}}


def write_environment(directory: str | Path) -> None:
    atomic.write_json(Path(directory) / ENVIRONMENT, describe())


def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


def _cpu_name() -> str:
    for line in _cpuinfo().splitlines():
        if line.split(":")[0].strip() in ("model name", "Model", "Hardware"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def _cpu_flags() -> list[str]:
    for line in _cpuinfo().splitlines():
        if line.split(":")[0].strip() in ("flags", "Features"):
            present = set(line.split(":", 1)[1].split())
            return [f for f in FLAGS if f in present]
    return []


def _gpu() -> str | None:
    import torch

    if torch.cuda.is_available():
        return torch.cuda.get_device_name(0)
    return None


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None
