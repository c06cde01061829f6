"""Image classification: the image pipeline on tiny random CNNs, the readers on small generated
files, a tiny Hugging Face ResNet through fit -> save -> reload -> predict, and bad input."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import pretune
from pretune import PretuneError
from pretune.data.augment import Normalize
from pretune.data.encode import collate
from pretune.data.images import ImageSettings, decode_images, read_idx, read_idx_pair, read_image_folder
from pretune.recipe import AugmentConfig, DataConfig
from pretune.tasks import create_task
from tests.conftest import image_recipe, shapes_frame


def save_png_folder(root, frame: pd.DataFrame) -> None:
    from PIL import Image

    for i, row in frame.iterrows():
        (root / row["label"]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(row["image"]).save(root / row["label"] / f"{i}.png")


@pytest.fixture(scope="module")
def tiny_resnet_dir(tmp_path_factory):
    """A 2-stage, 8/16-wide ResNet with random weights and ImageNet's 3-class head of 5 labels."""
    from transformers import ResNetConfig, ResNetForImageClassification

    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("tiny-resnet")
    config = ResNetConfig(embedding_size=8, hidden_sizes=[8, 16], depths=[1, 1], layer_type="basic",
                          num_labels=5)
    ResNetForImageClassification(config).save_pretrained(path)
    return path


def test_decode_resizes_converts_gray_and_normalises():
    gray = np.full((10, 12), 255, np.uint8)
    rgba = np.zeros((20, 20, 4), np.uint8)
    chw = np.ones((3, 8, 8), np.float32)  # floats in [0, 1], channels first
    pixels = decode_images([gray, rgba, chw], 16, "test")
    assert pixels.shape == (3, 3, 16, 16) and pixels.dtype == torch.uint8
    assert pixels[0].min() == 255 and pixels[1].max() == 0 and pixels[2].min() == 255
    settings = ImageSettings(16, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    out = Normalize(settings)({"pixel_values": pixels})["pixel_values"]
    assert torch.allclose(out[0], torch.full((3, 16, 16), 2.0))
    assert torch.allclose(out[1], torch.full((3, 16, 16), -2.0))
    with pytest.raises(PretuneError, match="cannot be turned into RGB"):
        decode_images([np.zeros((4, 4, 2), np.uint8)], 8, "train")


def test_image_split_collates_by_stacking_and_augments_deterministically():
    task = create_task(DataConfig(task="image-classification",
                                  augment=AugmentConfig(crop_scale=0.5, flip=0.5, color_jitter=0.3, mixup=0.4,
                                                        cutmix=1.0)))
    frame = shapes_frame(12)
    task.learn_labels(frame)
    split = task.encode(task.to_table(frame, "train"), ImageSettings(16))
    batch = collate(split, [0, 3, 5], pad_id=0)
    assert batch["pixel_values"].shape == (3, 3, 16, 16) and batch["pixel_values"].dtype == torch.float32
    assert batch["labels"].tolist() == [0, 1, 1]
    draws = []
    for _ in range(2):
        train = task.for_training(split, seed=11)
        draws.append([collate(train, [0, 1, 2, 3], 0) for _ in range(3)])
    for a, b in zip(*draws, strict=True):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    assert not torch.equal(draws[0][0]["pixel_values"], draws[0][1]["pixel_values"])  # fresh draws per batch
    assert draws[0][0]["labels"].shape == (4, 2)  # mixed labels are class-probability rows
    assert torch.allclose(draws[0][0]["labels"].sum(1), torch.ones(4))
    other = collate(task.for_training(split, seed=12), [0, 1, 2, 3], 0)
    assert not torch.equal(other["pixel_values"], draws[0][0]["pixel_values"])
    # The loop's batches are keyed by (epoch, batch number): a later start (a resume) draws the
    # same for a batch as a run from the start, and another epoch draws afresh.
    from pretune.train.loop import training_batches

    batches = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    here = [collate(train, rows, 0, key=(2, i)) for i, rows in enumerate(batches)]
    for a, b in zip(training_batches(train, batches, 0, 2, 0), here, strict=True):
        assert torch.equal(a["pixel_values"], b["pixel_values"]) and torch.equal(a["labels"], b["labels"])
    assert torch.equal(next(training_batches(train, batches, 1, 2, 0))["pixel_values"], here[1]["pixel_values"])
    assert not torch.equal(collate(train, batches[0], 0, key=(3, 0))["pixel_values"], here[0]["pixel_values"])
    # Augmented batches come from a DataLoader worker (2+ cores), which leaves the global RNG
    # (dropout's) as it was: a resume that restores it must not see an extra draw.
    # `train.dataloader_workers: 2` splits the batches between two workers, in order.
    rng = torch.get_rng_state()
    for workers in (None, 2):
        ahead = training_batches(train, batches, 1, 2, 0, workers)
        assert isinstance(ahead, torch.utils.data.dataloader._BaseDataLoaderIter) or (os.cpu_count() or 1) < 2
        for a, b in zip(ahead, here[1:], strict=True):
            assert torch.allclose(a["pixel_values"], b["pixel_values"], atol=1e-5)
            assert torch.equal(a["labels"], b["labels"])
    assert torch.equal(torch.get_rng_state(), rng)


def test_readers_image_folder_idx_and_a_truncated_file(tmp_path, monkeypatch):
    from pretune.data import images as images_module

    frame = shapes_frame(6)
    save_png_folder(tmp_path / "folder", frame)
    read = read_image_folder(tmp_path / "folder")
    assert sorted(read["label"].unique()) == ["left", "right"] and len(read) == 6
    images = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    with gzip.open(tmp_path / "x-images-idx3-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 3]) + b"".join(int(d).to_bytes(4, "big") for d in images.shape) + images.tobytes())
    with gzip.open(tmp_path / "x-labels-idx1-ubyte.gz", "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (2).to_bytes(4, "big") + bytes([7, 1]))
    assert np.array_equal(read_idx(tmp_path / "x-images-idx3-ubyte.gz"), images)
    pair = read_idx_pair(tmp_path / "x-images-idx3-ubyte.gz")
    assert pair["label"].tolist() == [7, 1] and np.array_equal(pair["image"][1], images[1])
    (tmp_path / "bad-images-idx3-ubyte").write_bytes(bytes([0, 0, 8, 3]) + (9).to_bytes(4, "big") * 3)
    with pytest.raises(PretuneError, match="truncated"):
        read_idx(tmp_path / "bad-images-idx3-ubyte")
    files = list(read["image"])
    in_place = decode_images(files, 8, "train")
    monkeypatch.setattr(images_module, "WORKER_THRESHOLD", 2)  # many files: decoded in DataLoader workers
    assert torch.equal(decode_images(files, 8, "train", workers=2), in_place)
    png = sorted((tmp_path / "folder" / "left").glob("*.png"))[0]
    png.write_bytes(png.read_bytes()[:60])
    for workers in (0, 2):
        with pytest.raises(PretuneError, match=f"cannot read image {png}"):
            decode_images(files, 8, "train", workers=workers)


def test_tables_of_paths_bundled_sets_and_an_offline_hub_id(tmp_path, monkeypatch):
    import huggingface_hub.constants

    from pretune.data.bundled import load_bundled
    from pretune.data.prepare import read_source
    from pretune.models.vision import load_image_settings

    frame = shapes_frame(4)
    save_png_folder(tmp_path / "imgs", frame)
    rows = [{"image": f"imgs/{y}/{i}.png", "label": y} for i, y in enumerate(frame["label"])]
    pd.DataFrame(rows).to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    cfg = DataConfig(task="image-classification")
    read = read_source(tmp_path / "t.jsonl", cfg)  # relative paths: from the table's folder
    assert read["image"][0] == str(tmp_path / "imgs/left/0.png")
    assert decode_images(list(read["image"]), 8, "t").shape == (4, 3, 8, 8)
    digits = load_bundled("mnist-5k")
    assert [len(digits[s]) for s in ("train", "validation", "test")] == [3999, 501, 500]
    assert digits["train"]["image"].iloc[0].shape == (28, 28)
    if (Path("/usr/share/datasets/fashion-mnist")).is_dir():
        fashion = load_bundled("fashion-mnist")
        assert len(fashion["test"]) == 10_000 and fashion["test"]["label"].iloc[0] == "Ankle boot"
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(PretuneError, match="could not fetch 'org/some-vit'"):
        load_image_settings("org/some-vit")


def test_hf_resnet_fit_save_reload_predict_and_strategies(tmp_path, tiny_resnet_dir):
    from pretune.models.layers import find_layers

    data = {"train": shapes_frame(160), "validation": shapes_frame(40, seed=1), "test": shapes_frame(40, seed=2)}
    run = pretune.fit(image_recipe(tiny_resnet_dir), tmp_path / "run", data=data, quiet=True)
    m = run.metrics
    assert m["status"] == "completed" and m["task"] == "image-classification"
    assert m["test"]["accuracy"] >= 0.8, m["test"]
    assert (run.model_path / "preprocessor_config.json").is_file()
    again = pretune.load_run(run.path)
    assert again.predictor().tokenizer.size == 32
    images = list(data["test"]["image"][:6])
    out = again.predict(images)
    assert [o["label"] for o in out] == list(data["test"]["label"][:6]) or sum(
        o["label"] == y for o, y in zip(out, data["test"]["label"][:6], strict=True)) >= 4
    assert set(out[0]["scores"]) == {"left", "right"}
    # The stages are the layers, known without configuration: freeze (with its cache) and llrd run.
    from transformers import AutoModelForImageClassification

    layers = find_layers(AutoModelForImageClassification.from_pretrained(tiny_resnet_dir))
    assert len(layers.layers) == 2 and all(n.startswith("classifier") for n in layers.head)
    frozen = pretune.fit(image_recipe(tiny_resnet_dir, epochs=2), tmp_path / "freeze", data=data, quiet=True,
                         overrides=["strategy.name=freeze"])
    assert frozen.metrics["train"]["feature_cache"]["batches_cached"] > 0
    augmented = ["data.augment.crop_scale=0.7", "data.augment.flip=0.5", "data.augment.mixup=0.2",
                 "data.augment.cutmix=1.0", "data.augment.color_jitter=0.2"]  # through the loop, once
    for name in ("llrd", "bitfit"):
        r = pretune.fit(image_recipe(tiny_resnet_dir, epochs=1), tmp_path / name, data=data, quiet=True, lean=True,
                        overrides=[f"strategy.name={name}", *(augmented if name == "llrd" else [])])
        assert r.metrics["status"] == "completed"


def test_mlp_head_surgery_on_image_models_reloads_with_the_same_logits(tmp_path, tiny_resnet_dir):
    """model.surgery.head replaces the classifier of an HF ResNet (classifier.1) and of
    EfficientNet-Lite (classifier); each saved model reloads with its MLP and the same logits."""
    from transformers import AutoModelForImageClassification

    from pretune.evaluate import logits_of
    from pretune.models.load import load_saved_model
    from pretune.models.surgery import apply_surgery
    from pretune.models.vision import build_efficientnet
    from pretune.recipe import SurgeryConfig

    task = create_task(DataConfig(task="image-classification"))
    pixels = torch.randn(2, 3, 32, 32)
    head = SurgeryConfig(head={"hidden_size": 12, "dropout": 0.2, "activation": "relu"})
    for name, model in (("resnet", AutoModelForImageClassification.from_pretrained(tiny_resnet_dir)),
                        ("lite", build_efficientnet("efficientnet-lite0", 5, 32, pretrained=False))):
        apply_surgery(model, head)
        mlp = model.classifier[1] if name == "resnet" else model.classifier
        assert [type(m).__name__ for m in mlp] == ["Linear", "ReLU", "Dropout", "Linear"] and mlp[3].out_features == 5
        (tmp_path / name).mkdir()
        model.eval().save_pretrained(tmp_path / name)
        again = load_saved_model(tmp_path / name, task)
        with torch.no_grad():
            torch.testing.assert_close(logits_of(again(pixel_values=pixels)), logits_of(model(pixel_values=pixels)))


def test_search_runs_on_an_image_recipe(tmp_path, tiny_resnet_dir):
    """The same `search:` section on an image recipe: trials are image runs, best.yaml one too."""
    save_png_folder(tmp_path / "shapes", shapes_frame(120))
    recipe = image_recipe(tiny_resnet_dir, epochs=1)
    recipe["data"]["source"] = str(tmp_path / "shapes")
    recipe["search"] = {"metric": "accuracy", "trials": 3, "sampler": "random", "pruner": "none", "seed": 0,
                        "space": {"train.optimizer.lr": {"loguniform": [1.0e-3, 1.0e-2]},
                                  "strategy.name": {"choice": ["full", "freeze"]}}}
    study = pretune.search(recipe, tmp_path / "study")
    assert (study.trials["state"] == "COMPLETE").sum() == 3
    best = pretune.load_run(study.summary["best"]["run"])
    assert best.metrics["task"] == "image-classification" and 0 <= best.metrics["validation"]["accuracy"] <= 1
    assert study.best_recipe.data.task == "image-classification"
    assert study.best_recipe.train.optimizer.lr == pytest.approx(study.best_trial["params"]["train.optimizer.lr"])


def test_kill_and_resume_draws_the_same_augmentations(tmp_path, tiny_resnet_dir):
    save_png_folder(tmp_path / "shapes", shapes_frame(120))
    recipe = image_recipe(tiny_resnet_dir, epochs=2, checkpoint_every_steps=3)
    recipe["data"] |= {"source": str(tmp_path / "shapes"),
                       "augment": {"crop_scale": 0.6, "flip": 0.5, "color_jitter": 0.2, "mixup": 0.2}}
    # A head with dropout draws from the global RNG, which the checkpoint restores: the augmenting
    # worker started at the resume point must not draw from it.
    recipe["model"]["surgery"] = {"head": {"hidden_size": 16, "dropout": 0.3}}
    # In a fresh interpreter, as a user's two commands would be (no state from other tests).
    script = tmp_path / "resume.py"
    script.write_text(f"""
import json, pretune
from tests.conftest import fit_killed_at, timeless
fit_killed_at({recipe!r}, {str(tmp_path / "killed")!r}, step=4)  # after the step-3 checkpoint
resumed = pretune.fit(resume={str(tmp_path / "killed")!r}, quiet=True)
whole = pretune.fit({recipe!r}, {str(tmp_path / "whole")!r}, quiet=True)
print(json.dumps([resumed.metrics["test"], whole.metrics["test"], timeless(resumed), timeless(whole)]))
""")
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=root,
                          env={**os.environ, "PYTHONPATH": str(root)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    resumed_test, whole_test, resumed_history, whole_history = json.loads(proc.stdout.strip().splitlines()[-1])
    assert resumed_test == whole_test
    assert resumed_history == whole_history


def test_cli_predict_image_dir_and_bad_inputs(tmp_path, tiny_resnet_dir):
    data = {"train": shapes_frame(48), "validation": shapes_frame(16, seed=1), "test": shapes_frame(16, seed=2)}
    pretune.fit(image_recipe(tiny_resnet_dir, epochs=1), tmp_path / "run", data=data, quiet=True)
    save_png_folder(tmp_path / "imgs", shapes_frame(4, seed=5))
    cli = [sys.executable, "-m", "pretune"]
    done = subprocess.run([*cli, "predict", str(tmp_path / "run"), "--image", str(tmp_path / "imgs")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 4 and '"label"' in lines[0] and '"image"' in lines[0]
    # A folder with one class, a truncated image, a size the backbone cannot take: one line, exit 2.
    one = tmp_path / "one"
    save_png_folder(one, shapes_frame(8).assign(label="left"))
    broken = tmp_path / "broken"
    save_png_folder(broken, shapes_frame(8))
    bad = sorted((broken / "left").glob("*.png"))[0]
    bad.write_bytes(bad.read_bytes()[:50])
    good = tmp_path / "good"
    save_png_folder(good, shapes_frame(8))
    vit = tmp_path / "vit"  # a ViT takes the one size its position embeddings were made for
    from transformers import ViTConfig, ViTForImageClassification

    ViTForImageClassification(ViTConfig(hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                                        intermediate_size=16, image_size=32, patch_size=8)).save_pretrained(vit)
    recipe = tmp_path / "r.yaml"
    for model, source, message in [(tiny_resnet_dir, one, "only one label"),
                                   (tiny_resnet_dir, broken, f"cannot read image {bad}"),
                                   (vit, good, "cannot take 16x16 px")]:
        recipe.write_text(f"model: {{source: {model}}}\ndata: {{task: image-classification, "
                          f"source: {source}, image_size: 16}}\ntrain: {{epochs: 1}}\n")
        done = subprocess.run([*cli, "fit", str(recipe), "--out", str(tmp_path / "o")],
                              capture_output=True, text=True)
        assert done.returncode == 2, done.stderr[-2000:]
        assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
