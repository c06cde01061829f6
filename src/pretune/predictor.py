"""Use a saved model: predict labels for texts, or measure it on a labelled table."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from pretune.data.encode import encode
from pretune.data.prepare import TextTable, to_table
from pretune.data.tables import read_table
from pretune.evaluate import compute_metrics
from pretune.recipe import DataConfig
from pretune.train.inference import predict_logits


class Predictor:
    def __init__(self, model_dir: str | Path, max_length: int = 128, batch_size: int = 64):
        from transformers import AutoTokenizer

        from pretune.models.load import load_saved_classifier

        self.model = load_saved_classifier(model_dir)
        self.tokenizer = AutoTokenizer.from_pretrained(model_dir)
        self.device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
        self.model.to(self.device).eval()
        config = self.model.config
        self.regression = config.problem_type == "regression"
        self.label_names = None if self.regression else [
            config.id2label[i] for i in range(config.num_labels)]
        self.max_length, self.batch_size = max_length, batch_size

    def logits(self, table: TextTable) -> np.ndarray:
        split = encode(table, self.tokenizer, self.max_length)
        return predict_logits(self.model, split, self.batch_size,
                              self.tokenizer.pad_token_id or 0, self.device)

    def predict(self, texts: list[str], pairs: list[str] | None = None) -> list[dict]:
        logits = self.logits(TextTable(list(texts), pairs, np.zeros(len(texts))))
        if self.regression:
            return [{"value": float(v)} for v in logits[:, 0]]
        probs = torch.softmax(torch.from_numpy(logits), dim=-1).numpy()
        return [
            {"label": self.label_names[int(p.argmax())], "score": float(p.max()),
             "scores": {name: float(p[i]) for i, name in enumerate(self.label_names)}}
            for p in probs
        ]

    def evaluate_file(self, path: str | Path, data_cfg: DataConfig, **columns) -> dict:
        cfg = data_cfg.model_copy(update={k: v for k, v in columns.items() if v is not None})
        table = to_table(read_table(path), cfg, self.label_names, str(path))
        metrics = compute_metrics(self.logits(table), table.labels, self.label_names)
        return {"samples": len(table), **metrics}

    def read_texts(self, path: str | Path, data_cfg: DataConfig, text_column: str | None = None):
        cfg = data_cfg.model_copy(update={"text_column": text_column or data_cfg.text_column})
        table = to_table(read_table(path), cfg, self.label_names, str(path), with_labels=False)
        return table.texts, table.pairs
