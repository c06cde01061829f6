"""Checkpoints hold nothing that needs unpickling, verify their checksums, and resume falls back to
the newest one that verifies. Unit level: a small module and a real AdamW, no fit."""

import io
import json
import pickle
import random

import numpy as np
import pytest
import torch

from pretune import PretuneError
from pretune.train.checkpoints import (
    CHECKSUMS,
    FILES,
    DamagedCheckpoint,
    _sha256,
    list_checkpoints,
    load_checkpoint,
    resume_checkpoint,
    save_checkpoint,
)
from pretune.train.schedules import create_scheduler


def _parts(seed: int = 0):
    from pretune.recipe import ScheduleConfig

    torch.manual_seed(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    scheduler = create_scheduler(optimizer, ScheduleConfig(), 20)
    return model, optimizer, scheduler


def _train(model, optimizer, scheduler, steps: int) -> None:
    for _ in range(steps):
        loss = model(torch.randn(3, 4)).pow(2).mean()
        loss.backward()
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()


def _save(root, step, model, optimizer, scheduler, keep=3):
    return save_checkpoint(root, step, model, optimizer, scheduler, {"loop": {"step": step}},
                           "seed: 1\n", keep)


class _Planted:
    """Unpickling this writes a file: the proof that a loader executed code from a checkpoint."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def _crafted_payloads(marker) -> dict[str, bytes]:
    buffer = io.BytesIO()
    torch.save({"optimizer": _Planted(marker)}, buffer)  # what torch.load(weights_only=False) ran
    return {"pickle": pickle.dumps(_Planted(marker)), "torch.save": buffer.getvalue()}


def test_round_trip_restores_optimizer_scheduler_and_rngs_bit_for_bit(tmp_path):
    model, optimizer, scheduler = _parts()
    _train(model, optimizer, scheduler, 3)
    torch.manual_seed(5), np.random.seed(5), random.seed(5)
    path = _save(tmp_path, 3, model, optimizer, scheduler)
    assert {p.name for p in path.iterdir()} == {*FILES, CHECKSUMS}
    assert not any(p.suffix in (".pt", ".pkl", ".bin") for p in path.iterdir())
    expected_draws = (torch.rand(3), np.random.rand(3), random.random())
    torch.manual_seed(5)
    _train(model, optimizer, scheduler, 2)  # continue the original: the reference

    copy = _parts(seed=1)
    _train(*copy, 1)  # different weights, optimizer moments and schedule position
    state = load_checkpoint(path, *copy)
    assert state["loop"] == {"step": 3}
    assert torch.equal(torch.rand(3), expected_draws[0])
    assert np.array_equal(np.random.rand(3), expected_draws[1]) and random.random() == expected_draws[2]
    torch.manual_seed(5)
    _train(*copy, 2)
    for a, b in zip(model.parameters(), copy[0].parameters(), strict=True):
        assert torch.equal(a, b)
    assert copy[1].state_dict()["param_groups"] == optimizer.state_dict()["param_groups"]
    assert copy[2].state_dict() == scheduler.state_dict()


@pytest.mark.parametrize("name", [*FILES, CHECKSUMS])
@pytest.mark.parametrize("payload", ["pickle", "torch.save"])
def test_a_crafted_pickle_in_any_file_is_refused_and_runs_nothing(tmp_path, name, payload):
    parts = _parts()
    good = _save(tmp_path / "checkpoints", 2, *parts)
    crafted = _save(tmp_path / "checkpoints", 4, *parts)
    marker = tmp_path / "ran"
    (crafted / name).write_bytes(_crafted_payloads(marker)[payload])
    if name != CHECKSUMS:
        # The attacker can write checksums too: what stops the code is the format, not the sum.
        sums = json.loads((crafted / CHECKSUMS).read_text())
        (crafted / CHECKSUMS).write_text(json.dumps({**sums, name: _sha256(crafted / name)}))
    with pytest.raises(DamagedCheckpoint) as refused:
        load_checkpoint(crafted, *_parts(1))
    assert "\n" not in str(refused.value) and crafted.name in str(refused.value)
    assert not marker.exists()
    path, _ = resume_checkpoint(tmp_path / "checkpoints", *_parts(1))
    assert path == good and not marker.exists()


def test_a_checkpoint_of_the_old_pickled_format_is_not_unpickled(tmp_path):
    parts = _parts()
    path = _save(tmp_path, 2, *parts)
    marker = tmp_path / "ran"
    for name in ("optimizer.pt", "rng.pt"):
        (path / name).write_bytes(_crafted_payloads(marker)["torch.save"])
    (path / CHECKSUMS).unlink()
    with pytest.raises(PretuneError, match=r"no intact checkpoint .*older pretune's pickled optimizer.pt"):
        resume_checkpoint(tmp_path, *_parts(1))
    assert not marker.exists()


@pytest.mark.parametrize("name", [*FILES, CHECKSUMS])
def test_a_truncated_file_is_named_and_resume_falls_back(tmp_path, capsys, name):
    parts = _parts()
    _train(*parts, 1)
    older = _save(tmp_path, 1, *parts)
    _train(*parts, 1)
    newest = _save(tmp_path, 2, *parts)
    data = (newest / name).read_bytes()
    (newest / name).write_bytes(data[: len(data) // 2])
    with pytest.raises(DamagedCheckpoint, match=name if name != CHECKSUMS else CHECKSUMS):
        load_checkpoint(newest, *_parts(1))
    copy = _parts(1)
    path, state = resume_checkpoint(tmp_path, *copy)
    assert path == older and state["loop"]["step"] == 1
    warning = capsys.readouterr().err
    assert f"checkpoint {newest.name} is damaged" in warning and warning.count("\n") == 1
    reference = _parts()
    _train(*reference, 1)
    for a, b in zip(reference[0].parameters(), copy[0].parameters(), strict=True):
        assert torch.equal(a, b)  # the older checkpoint's weights, whole


def test_no_intact_checkpoint_is_one_line(tmp_path):
    parts = _parts()
    for step in (1, 2):
        path = _save(tmp_path, step, *parts)
        (path / "model.safetensors").write_bytes(b"")
    with pytest.raises(PretuneError) as e:
        resume_checkpoint(tmp_path, *_parts(1))
    assert str(e.value).startswith("no intact checkpoint") and "\n" not in str(e.value)
    assert "step-0000001" in str(e.value) and "step-0000002" in str(e.value)


def test_a_killed_checkpoint_write_leaves_nothing_that_counts(tmp_path):
    parts = _parts()
    _save(tmp_path, 1, *parts)
    (tmp_path / ".step-0000002.0a1b2c3d.tmp").mkdir()  # what a kill mid-write leaves
    (tmp_path / "step-notanumber").mkdir()
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-0000001"]
    _save(tmp_path, 3, *parts, keep=1)
    assert [p.name for p in list_checkpoints(tmp_path)] == ["step-0000003"]
