"""Files and faults: output stays inside its directory (labels, planted symbolic links), files
honour the umask, a fit killed before its first checkpoint starts afresh, write errors are one
line, recipes are bounded, and model directories run no code (pickles, remote code)."""

import json
import os
import resource
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

import pretune
from pretune import PretuneError
from tests.conftest import close, fit_killed_at, sentiment_frame, timeless, tiny_recipe


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("small") / "small.csv"
    sentiment_frame(120).to_csv(path, index=False)
    return path


def _recipe(model_dir, data, **train) -> dict:
    return tiny_recipe(model_dir, data, **{"epochs": 2, "checkpoint_every_steps": 3, **train})


@pytest.fixture(scope="module")
def whole(tmp_path_factory, tiny_model_dir, small_csv):
    """An uninterrupted fit under umask 022, keeping its newest checkpoint."""
    old = os.umask(0o022)
    try:
        return pretune.fit(_recipe(tiny_model_dir, small_csv, keep_checkpoints_after_fit=1),
                           tmp_path_factory.mktemp("whole") / "run", quiet=True)
    finally:
        os.umask(old)


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_files_honour_the_umask_and_completed_runs_keep_what_is_asked(whole):
    modes = {str(p.relative_to(whole.path)): p.stat().st_mode & 0o777 for p in whole.path.rglob("*")}
    assert {"model/model.safetensors", "plots/learning_curves.png", "metrics.json"} <= set(modes)
    wrong = {name: oct(mode) for name, mode in modes.items()
             if mode != (0o755 if (whole.path / name).is_dir() else 0o644)}
    assert not wrong
    kept = [p.name for p in (whole.path / "checkpoints").iterdir()]
    assert kept == [f"step-{whole.metrics['train']['steps']:07d}"]  # keep_checkpoints_after_fit: 1


def test_a_fit_killed_before_its_first_checkpoint_starts_afresh(tmp_path, tiny_model_dir, small_csv, whole):
    recipe = _recipe(tiny_model_dir, small_csv)
    out = tmp_path / "run"
    fit_killed_at(recipe, out, step=2)  # the first checkpoint is at step 3
    # What a kill in the middle of an atomic write leaves: removed on the next start.
    (out / "checkpoints" / ".step-0000003.0a1b2c3d.tmp").mkdir(parents=True)
    (out / ".metrics.jsonl.0a1b2c3d.tmp").write_text("half")
    with pytest.raises(PretuneError, match="already holds a run"):
        pretune.fit(recipe, whole.path, quiet=True)  # one with checkpoints (or finished) is kept
    run = pretune.fit(recipe, out, quiet=True)  # the same command
    assert run.status == "completed" and not list(out.rglob("*.tmp"))
    assert close(run.metrics["test"], whole.metrics["test"]) and close(timeless(run), timeless(whole))
    assert not (out / "checkpoints").exists()  # keep_checkpoints_after_fit: 0
    # Killed after training, while its predictions were written: resume writes what is missing.
    (out / "predictions" / "test.jsonl").unlink()
    again = pretune.fit(resume=out, quiet=True)
    assert again.metrics == run.metrics and (out / "predictions" / "test.jsonl").is_file()


@pytest.mark.parametrize("name", ["plots", "checkpoints", "metrics.jsonl"])
def test_a_planted_link_is_never_written_through(tmp_path, tiny_model_dir, small_csv, name):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    users_file = elsewhere / "notes.txt"
    users_file.write_text("mine")
    out = tmp_path / "run"
    out.mkdir()
    (out / name).symlink_to(users_file if name == "metrics.jsonl" else elsewhere)
    with pytest.raises(PretuneError, match=f"{name} is a symbolic link .* does not write through"):
        pretune.fit(_recipe(tiny_model_dir, small_csv), out, quiet=True)
    (out / "recipe.yaml").write_text(pretune.Recipe.from_dict(_recipe(tiny_model_dir, small_csv)).to_yaml())
    with pytest.raises(PretuneError, match="symbolic link"):
        pretune.fit(resume=out, quiet=True)
    assert _tree(elsewhere) == {"notes.txt": b"mine"}


def test_labels_cannot_climb_out_of_the_run_directory(tmp_path, tiny_model_dir):
    frame = sentiment_frame(60)
    frame["label"] = frame["label"].map({"pos": "../../x", "neg": "/tmp/y"})
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    before = {p for p in tmp_path.parent.rglob("*")}
    run = pretune.fit(_recipe(tiny_model_dir, data, epochs=1), tmp_path / "out" / "run", quiet=True)
    assert set(run.metrics["model"]["labels"]) == {"../../x", "/tmp/y"}
    created = {p for p in tmp_path.parent.rglob("*")} - before
    assert created and all((tmp_path / "out") in p.parents or p == tmp_path / "out" for p in created)
    assert not Path("/tmp/y").exists()


def _cli_fit(args: list[str], cwd: Path, preexec=None, prefix: list[str] = ()) -> subprocess.CompletedProcess:
    return subprocess.run([*prefix, sys.executable, "-m", "pretune", "fit", *args, "--quiet"], cwd=cwd,
                          capture_output=True, text=True, preexec_fn=preexec, timeout=600)


def _small_files_only():
    # A full disk, simulated: files past 1 MB fail with EFBIG (SIGXFSZ ignored, so the write
    # returns an error instead of killing the process).
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))


def test_write_errors_are_one_line_and_leave_earlier_files_whole(tmp_path, tiny_model_dir, small_csv):
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(yaml.safe_dump(_recipe(tiny_model_dir, small_csv)))
    out = tmp_path / "run"
    # The first checkpoint's weights (4 MB) do not fit: recipe.yaml and metrics.jsonl do.
    full = _cli_fit([str(recipe), "--out", str(out)], tmp_path, preexec=_small_files_only)
    assert full.returncode == 2, full.stderr[-3000:]
    assert full.stderr.strip().count("\n") == 0 and "File too large" in full.stderr
    assert pretune.Recipe.load(out / "recipe.yaml").seed == 7
    history = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert history and history[-1]["step"] <= 3
    assert not list(out.rglob("*.tmp")) and not list((out / "checkpoints").glob("step-*"))

    # A read-only directory (root ignores permission bits: drop the capabilities that let it).
    before = _tree(out)
    out.chmod(0o555)
    prefix = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search,-fowner"] if os.geteuid() == 0 else []
    try:
        readonly = _cli_fit([str(recipe), "--out", str(out)], tmp_path, prefix=prefix)
    finally:
        out.chmod(0o755)
    assert readonly.returncode == 2, readonly.stderr[-3000:]
    assert readonly.stderr.strip().count("\n") == 0 and "Permission denied" in readonly.stderr
    assert _tree(out) == before


def test_a_recipe_is_data_of_bounded_size(tmp_path):
    laughs = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        laughs.append(f"{name}: &{name} [{','.join([f'*{prev}'] * 9)}]")
    path = tmp_path / "laughs.yaml"
    path.write_text("\n".join(laughs) + "\n")
    assert path.stat().st_size < 500
    with pytest.raises(PretuneError, match="aliases expand it past"):
        pretune.Recipe.load(path)
    with pytest.raises(PretuneError, match="--set model.layer_prefixes: YAML aliases"):
        pretune.Recipe.load(None, ["model.layer_prefixes=" + "{" + ", ".join(laughs) + "}"])
    (tmp_path / "self.yaml").write_text("seed: &s [*s]\n")
    with pytest.raises(PretuneError, match="refer to themselves"):
        pretune.Recipe.load(tmp_path / "self.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("seed: 1\n" + "#" * (2 << 20))
    with pytest.raises(PretuneError, match="a recipe is at most"):
        pretune.Recipe.load(big)
    shared = tmp_path / "shared.yaml"  # aliases within the limit are ordinary YAML
    shared.write_text("model:\n  layer_prefixes: &p [embeddings, encoder]\nstrategy:\n  name: full\n")
    assert pretune.Recipe.load(shared).model.layer_prefixes == ["embeddings", "encoder"]


@pytest.fixture()
def small_bert_dir(tmp_path) -> Path:
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    path = tmp_path / "bert"
    BertModel(BertConfig(vocab_size=100, hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                         intermediate_size=32)).save_pretrained(path)
    return path


def _load(source: Path, **model):
    from pretune.models.load import load_model
    from pretune.recipe import DataConfig, ModelConfig
    from pretune.tasks import create_task

    task = create_task(DataConfig())
    task.label_names = ["neg", "pos"]
    return load_model(ModelConfig(source=str(source), **model), task)


class _Planted:
    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (exec, (f"open({self.marker!r}, 'w').write('ran')",))


def test_pickled_weights_are_refused_unless_allowed_and_then_hold_only_tensors(tmp_path, small_bert_dir):
    from safetensors.torch import load_file

    weights = load_file(small_bert_dir / "model.safetensors")
    (small_bert_dir / "model.safetensors").unlink()
    torch.save(weights, small_bert_dir / "pytorch_model.bin")
    with pytest.raises(PretuneError, match=r"only pickled weights \(pytorch_model.bin\).*safetensors.*allow_pickle"):
        _load(small_bert_dir)
    loaded = _load(small_bert_dir, allow_pickle=True)
    assert torch.equal(loaded.bert.embeddings.word_embeddings.weight, weights["embeddings.word_embeddings.weight"])

    marker = tmp_path / "ran"
    torch.save({"embeddings.word_embeddings.weight": _Planted(marker)}, small_bert_dir / "pytorch_model.bin")
    with pytest.raises(PretuneError, match="hold more than tensors") as refused:
        _load(small_bert_dir, allow_pickle=True)
    assert "\n" not in str(refused.value) and not marker.exists()
    shutil.move(small_bert_dir / "pytorch_model.bin", small_bert_dir / "model.pt")
    with pytest.raises(PretuneError, match=r"only pickled weights \(model.pt\)"):
        _load(small_bert_dir)


def test_a_model_directory_runs_no_code_of_its_own(tmp_path, small_bert_dir):
    marker = tmp_path / "ran"
    config = json.loads((small_bert_dir / "config.json").read_text())
    config["auto_map"] = {"AutoConfig": "planted.PlantedConfig",
                          "AutoModelForSequenceClassification": "planted.PlantedModel"}
    (small_bert_dir / "config.json").write_text(json.dumps(config))
    (small_bert_dir / "planted.py").write_text(f"open({str(marker)!r}, 'w').write('ran')\n")
    model = _load(small_bert_dir)  # trust_remote_code stays off: the plain BERT class loads
    assert type(model).__name__ == "BertForSequenceClassification" and not marker.exists()
