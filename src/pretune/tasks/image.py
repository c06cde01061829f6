"""Image classification: one class per image (a path, a PIL image or an array); softmax over
the classes, with sequence classification's labels, loss, metrics and decoding.

Encoding decodes each image once to RGB at the model's input size (uint8); each batch is then
normalised with the backbone's own mean / std, and training batches augmented first
(data/augment.py). The "tokenizer" of this task is the model's ImageSettings.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import torch

from pretune.data.augment import Augment, Normalize
from pretune.data.encode import EncodedSplit
from pretune.data.images import ImageSettings, decode_images
from pretune.data.prepare import TextTable
from pretune.errors import PretuneError
from pretune.tasks.base import tasks
from pretune.tasks.sequence import SequenceClassification


@tasks.register("image-classification")
class ImageClassification(SequenceClassification):
    auto_class = "AutoModelForImageClassification"
    inputs = "image"
    text_column = "image"
    inferred_from = "image-folders"
    # EfficientNet-Lite0 on 1,500 MNIST images, 2 epochs, reached 0.50 test accuracy at the text
    # default AdamW 1e-4 and 0.96 at 1e-3 (issue 16).
    recipe_defaults = {"train.optimizer.lr": 1e-3}
    pipeline_flat = False  # pipeline answers each image with its top 5
    pipeline_top_k = 5
    pipeline_tag = "image-classification"
    card_example = (("import numpy as np",), "[np.zeros((64, 64, 3), dtype=np.uint8)]")

    def to_table(self, frame: pd.DataFrame, where: str, with_labels: bool = True) -> TextTable:
        images = list(frame[self.cfg.text_column])
        labels = self.labels_of(frame, where) if with_labels else None
        return TextTable(images, None, labels)

    def encode(self, table: TextTable, settings: ImageSettings, max_length: int = 0) -> EncodedSplit:
        if not isinstance(settings, ImageSettings):
            raise PretuneError(f"image-classification encodes with ImageSettings, not {type(settings).__name__}")
        pixels = decode_images(table.texts, settings.size, "image")
        return EncodedSplit({"pixel_values": pixels}, table.labels, np.ones(len(pixels), dtype=np.int64),
                            transform=Normalize(settings))

    def for_training(self, split: EncodedSplit, seed: int) -> EncodedSplit:
        augment = self.cfg.augment
        if not augment.active:
            return split
        settings = split.transform.settings  # encode's Normalize: the model's size and statistics
        return dataclasses.replace(split, transform=Augment(augment, settings, seed, self.num_labels))

    def check_model(self, model, settings: ImageSettings) -> None:
        """One forward pass on a blank image of the configured size: a size the backbone cannot
        take (too small for its strides, or not the one size a ViT's positions fit) fails here."""
        was_training = model.training
        model.eval()
        try:
            with torch.no_grad():
                model(pixel_values=torch.zeros(1, 3, settings.size, settings.size))
        except (RuntimeError, ValueError) as e:
            raise PretuneError(f"the model cannot take {settings.size}x{settings.size} px images "
                               f"(data.image_size): {str(e).splitlines()[0]}") from None
        finally:
            model.train(was_training)
