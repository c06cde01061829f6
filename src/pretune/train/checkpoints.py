"""Checkpoints: everything a resume needs to continue exactly where a run stopped.

checkpoints/step-0000123/ holds

    model.safetensors      the weights
    optimizer.safetensors  optimizer and scheduler state: tensors, the structure as JSON metadata
    rng.safetensors        the torch / numpy / python RNG states, the same way
    state.json             the loop's counters and callbacks' state
    recipe.yaml            the resolved recipe
    checksums.json         sha256 of each file above, written last

Nothing in a checkpoint needs unpickling: a run directory someone shares cannot run code on
resume. Each checkpoint is written into a temporary directory renamed into place, so it is whole
or absent; the checksums catch what happened to it after that (a truncated copy, a bad disk), and
resume falls back to the newest checkpoint that verifies.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_model, save_file, save_model

from pretune import runs
from pretune.atomic import atomic_dir
from pretune.errors import PretuneError
from pretune.recipe import read_yaml

PREFIX = "step-"
MODEL, OPTIMIZER, RNG, STATE, RECIPE, CHECKSUMS = (
    "model.safetensors", "optimizer.safetensors", "rng.safetensors", runs.CHECKPOINT_STATE, runs.RECIPE,
    "checksums.json")
FILES = (MODEL, OPTIMIZER, RNG, STATE, RECIPE)
_NAME = re.compile(rf"^{PREFIX}(\d+)$")
# Markers of what JSON cannot say itself: a tensor kept in the safetensors part, a tuple (RNG
# states, Adam's betas), a dict whose keys are not strings (optimizer state by parameter index).
_TENSOR, _TUPLE, _ITEMS = "__tensor__", "__tuple__", "__items__"


class DamagedCheckpoint(PretuneError):
    """A checkpoint that does not verify or does not load: resume tries an older one."""


def save_checkpoint(
    root: Path, step: int, model, optimizer, scheduler, loop_state: dict, recipe_yaml: str,
    keep: int,
) -> Path:
    target = root / f"{PREFIX}{step:07d}"
    with atomic_dir(target) as tmp:
        try:
            save_model(model, str(tmp / MODEL))
        except SafetensorError as e:
            raise OSError(f"cannot write {target / MODEL}: {e}") from None
        _save_tree({"optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict()}, tmp / OPTIMIZER)
        _save_tree(
            {"torch": torch.get_rng_state(), "numpy": _numpy_state(), "python": random.getstate(),
             "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None},
            tmp / RNG,
        )
        (tmp / STATE).write_text(json.dumps(loop_state, indent=2))
        (tmp / RECIPE).write_text(recipe_yaml)
        (tmp / CHECKSUMS).write_text(json.dumps({name: _sha256(tmp / name) for name in FILES}, indent=2))
    prune_checkpoints(root, keep)
    return target


def prune_checkpoints(root: Path, keep: int) -> None:
    """Keep the newest `keep` checkpoints; a checkpoints/ directory left empty goes too (best/,
    the keep_best weights without optimizer state, stays)."""
    found = list_checkpoints(root)
    for old in found[:max(len(found) - keep, 0)]:
        shutil.rmtree(old, ignore_errors=True)
    if root.is_dir() and not root.is_symlink() and not any(root.iterdir()):
        root.rmdir()


def list_checkpoints(root: Path) -> list[Path]:
    """Checkpoint directories, oldest first, whole or not (verify_checkpoint tells)."""
    if not root.is_dir() or root.is_symlink():
        return []
    found = [p for p in root.iterdir() if _NAME.match(p.name) and p.is_dir() and not p.is_symlink()]
    return sorted(found, key=lambda p: int(_NAME.match(p.name).group(1)))


def latest_checkpoint(root: Path) -> Path | None:
    found = list_checkpoints(root)
    return found[-1] if found else None


def verify_checkpoint(path: Path) -> None:
    """Raise DamagedCheckpoint unless every file matches the checksum recorded for it."""
    manifest = path / CHECKSUMS
    if not manifest.is_file():
        old = [n for n in ("optimizer.pt", "rng.pt") if (path / n).exists()]
        why = f" (an older pretune's pickled {', '.join(old)}: not loaded)" if old else ""
        raise DamagedCheckpoint(f"{path} has no {CHECKSUMS}{why}")
    try:
        recorded = json.loads(manifest.read_text())
    except (ValueError, UnicodeDecodeError):
        raise DamagedCheckpoint(f"{manifest} is not valid JSON") from None
    if not isinstance(recorded, dict) or set(recorded) != set(FILES):
        raise DamagedCheckpoint(f"{manifest} does not list the files {', '.join(FILES)}")
    for name in FILES:
        file = path / name
        if file.is_symlink() or not file.is_file():
            raise DamagedCheckpoint(f"{file} is missing")
        if _sha256(file) != recorded[name]:
            raise DamagedCheckpoint(f"{file} does not match its checksum (truncated or changed)")


def load_checkpoint(path: Path, model, optimizer, scheduler, run: dict | None = None) -> dict:
    """Verify, then restore weights, optimizer, scheduler and RNGs in place; return the loop
    state. Raises DamagedCheckpoint (naming the file) if anything does not verify or load, or if
    the loop state does not fit `run` ({"total_steps", "epochs"} of the run it resumes): checksums
    say a file is whole, not that its counters are the run's."""
    verify_checkpoint(path)
    try:
        opt = _load_tree(path / OPTIMIZER)
        rng = _load_tree(path / RNG)
        state = json.loads((path / STATE).read_text())
        if run is not None:
            runs.check_checkpoint_state(path / STATE, state, int(_NAME.match(path.name).group(1)), **run)
        read_yaml(path / RECIPE)  # data, bounded in size, or the checkpoint is not whole
        load_model(model, str(path / MODEL))
        optimizer.load_state_dict(opt["optimizer"])
        scheduler.load_state_dict(opt["scheduler"])
        torch.set_rng_state(rng["torch"])
        np.random.set_state((rng["numpy"][0], np.asarray(rng["numpy"][1], dtype=np.uint32), *rng["numpy"][2:]))
        random.setstate(rng["python"])
        if rng["cuda"] is not None and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(rng["cuda"])
    except DamagedCheckpoint:
        raise
    except PretuneError as e:
        raise DamagedCheckpoint(f"{path} does not load: {e}") from None
    except (OSError, ValueError, KeyError, TypeError, IndexError, RuntimeError, RecursionError, SafetensorError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise DamagedCheckpoint(f"{path} does not load: {why}") from None
    if not isinstance(state, dict) or "loop" not in state:
        raise DamagedCheckpoint(f"{path / STATE} holds no loop state")
    return state


def resume_checkpoint(root: Path, model, optimizer, scheduler, run: dict | None = None) -> tuple[Path, dict]:
    """Load the newest checkpoint that verifies (and fits `run`, see load_checkpoint), warning (on
    stderr) of each newer one that does not; one line naming them all, and the way forward, if none
    does."""
    damaged = []
    for path in reversed(list_checkpoints(root)):
        try:
            return path, load_checkpoint(path, model, optimizer, scheduler, run)
        except DamagedCheckpoint as e:
            damaged.append(str(e))
            print(f"pretune: warning: checkpoint {path.name} is damaged ({e}); trying an older one",
                  file=sys.stderr)
    raise PretuneError(f"no intact checkpoint to resume from in {root}: {'; '.join(damaged) or 'none saved'}; "
                       f"to fit the run afresh, remove {root} and give the same command with --out {root.parent}")


def _save_tree(tree, path: Path) -> None:
    tensors: dict[str, torch.Tensor] = {}
    structure = _flatten(tree, tensors)
    try:
        save_file(tensors, str(path), metadata={"pretune": json.dumps(structure)})
    except SafetensorError as e:
        raise OSError(f"cannot write {path}: {e}") from None


def _load_tree(path: Path):
    with safe_open(str(path), framework="pt") as f:
        structure = json.loads((f.metadata() or {})["pretune"])
        tensors = {key: f.get_tensor(key) for key in f.keys()}  # noqa: SIM118 (not a dict)
    return _unflatten(structure, tensors)


def _flatten(obj, tensors: dict):
    if isinstance(obj, torch.Tensor):
        key = str(len(tensors))
        tensors[key] = obj.detach().to("cpu").contiguous()
        return {_TENSOR: key}
    if isinstance(obj, tuple):
        return {_TUPLE: [_flatten(v, tensors) for v in obj]}
    if isinstance(obj, list):
        return [_flatten(v, tensors) for v in obj]
    if isinstance(obj, dict):
        if all(isinstance(k, str) for k in obj) and not {_TENSOR, _TUPLE, _ITEMS} & set(obj):
            return {k: _flatten(v, tensors) for k, v in obj.items()}
        return {_ITEMS: [[_flatten(k, tensors), _flatten(v, tensors)] for k, v in obj.items()]}
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    raise TypeError(f"a checkpoint holds tensors and plain data, not {type(obj).__name__}")


def _unflatten(obj, tensors: dict):
    if isinstance(obj, list):
        return [_unflatten(v, tensors) for v in obj]
    if not isinstance(obj, dict):
        return obj
    if len(obj) == 1 and _TENSOR in obj:
        return tensors[obj[_TENSOR]]
    if len(obj) == 1 and _TUPLE in obj:
        return tuple(_unflatten(v, tensors) for v in obj[_TUPLE])
    if len(obj) == 1 and _ITEMS in obj:
        return {_unflatten(k, tensors): _unflatten(v, tensors) for k, v in obj[_ITEMS]}
    return {k: _unflatten(v, tensors) for k, v in obj.items()}


def _numpy_state() -> tuple:
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return name, keys.tolist(), pos, has_gauss, cached


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
