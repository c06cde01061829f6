"""Checkpoints: everything a resume needs to continue exactly where a run stopped.

checkpoints/step-000123/ holds the model weights (safetensors), optimizer and scheduler state,
the RNG states, the loop's counters and callbacks' state, and the resolved recipe. Each is
written into a temporary directory renamed into place, so a checkpoint is whole or absent.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import numpy as np
import torch
from safetensors.torch import load_model, save_model

from pretune.atomic import atomic_dir

PREFIX = "step-"


def save_checkpoint(
    root: Path, step: int, model, optimizer, scheduler, loop_state: dict, recipe_yaml: str,
    keep: int,
) -> Path:
    target = root / f"{PREFIX}{step:07d}"
    with atomic_dir(target) as tmp:
        save_model(model, str(tmp / "model.safetensors"))
        torch.save({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()},
                   tmp / "optimizer.pt")
        torch.save(
            {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
             "python": random.getstate(),
             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            tmp / "rng.pt",
        )
        (tmp / "state.json").write_text(json.dumps(loop_state, indent=2))
        (tmp / "recipe.yaml").write_text(recipe_yaml)
    for old in list_checkpoints(root)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return target


def list_checkpoints(root: Path) -> list[Path]:
    if not root.is_dir():
        return []
    done = [p for p in root.glob(f"{PREFIX}*") if (p / "state.json").is_file()]
    return sorted(done, key=lambda p: int(p.name[len(PREFIX):]))


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def load_checkpoint(path: Path, model, optimizer, scheduler) -> dict:
    """Restore weights, optimizer, scheduler and RNGs in place; return the loop state."""
    load_model(model, str(path / "model.safetensors"))
    opt = torch.load(path / "optimizer.pt", weights_only=False)
    optimizer.load_state_dict(opt["optimizer"])
    scheduler.load_state_dict(opt["scheduler"])
    rng = torch.load(path / "rng.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    np.random.set_state(rng["numpy"])
    random.setstate(rng["python"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return json.loads((path / "state.json").read_text())
