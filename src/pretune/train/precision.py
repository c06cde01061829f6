"""Pick the autocast precision: bf16 only where the hardware computes it fast."""

from __future__ import annotations

from pathlib import Path

import torch

from pretune.errors import PretuneError

# Without these CPU instructions bf16 matmuls are emulated: measured ~200x slower than fp32 on
# an AVX2-only EPYC, while ~2.7x faster on a CPU with avx512_bf16.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_fast_bf16() -> bool:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    flags = next((line for line in text.splitlines() if line.startswith("flags")), "")
    return any(flag in flags.split() for flag in CPU_BF16_FLAGS)


def resolve_precision(requested: str, device: torch.device) -> str:
    if requested == "auto":
        if device.type == "cuda":
            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        return "bf16" if device.type == "cpu" and cpu_has_fast_bf16() else "no"
    if requested == "fp16" and device.type != "cuda":
        raise PretuneError("train.mixed_precision fp16 needs a CUDA device; use bf16 or no")
    return requested
