"""Per-batch image transforms on uint8 (n, 3, h, w) tensors: normalisation for every split, and
for training random resized crop, flip, colour jitter, mixup / cutmix.

Plain tensor operations (torchvision and kornia do not import beside this CPU torch build).
A training batch's random draws come from a torch.Generator seeded by (recipe seed, epoch, batch
number): a pure function, like the batch order, so a fit from scratch augments identically each
time, a resumed fit draws exactly what the uninterrupted one would have, and a DataLoader worker
process can augment a batch ahead of the step without sharing any state with the loop.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from pretune.data.images import ImageSettings
from pretune.recipe import AugmentConfig


class Normalize:
    """uint8 pixels -> float, (x / 255 - mean) / std per channel: the backbone's normalisation."""

    def __init__(self, settings: ImageSettings):
        self.settings = settings
        self.mean = torch.tensor(settings.mean, dtype=torch.float32).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(settings.std, dtype=torch.float32).view(1, 3, 1, 1) * 255

    def __call__(self, batch: dict, key: tuple[int, ...] | None = None) -> dict:
        pixels = batch["pixel_values"].float()
        return {**batch, "pixel_values": (pixels - self.mean) / self.std}


class Augment:
    """The recipe's augmentations, then normalisation. `num_labels` is needed by mixup / cutmix,
    which turn labels into class-probability rows (cross-entropy takes those as targets)."""

    augments = True  # the loop runs it in a DataLoader worker (see train/loop.py)

    def __init__(self, cfg: AugmentConfig, settings: ImageSettings, seed: int, num_labels: int):
        self.cfg, self.num_labels, self.seed = cfg, num_labels, seed
        self.normalize = Normalize(settings)
        self.generator = torch.Generator().manual_seed(seed)

    def _rand(self, *shape) -> torch.Tensor:
        return torch.rand(shape, generator=self.generator)

    def __call__(self, batch: dict, key: tuple[int, ...] | None = None) -> dict:
        """Augment and normalise a batch; `key` (epoch, batch number) reseeds the draws for it."""
        if key is not None:  # a tuple of ints hashes alike in every process (no hash randomisation)
            self.generator.manual_seed(hash((self.seed, *key)) & (2**63 - 1))
        x = batch["pixel_values"].float()
        cfg = self.cfg
        if cfg.crop_scale:
            x = self._resized_crop(x, cfg.crop_scale)
        if cfg.flip:
            flip = self._rand(len(x)) < cfg.flip
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if cfg.color_jitter:
            x = self._jitter(x, cfg.color_jitter)
        out = self.normalize({**batch, "pixel_values": x.clamp(0, 255)})
        if (cfg.mixup or cfg.cutmix) and "labels" in out:
            out = self._mix(out)
        return out

    def _resized_crop(self, x: torch.Tensor, min_scale: float) -> torch.Tensor:
        """Per image: a box of area share U(min_scale, 1) and aspect ratio in [3/4, 4/3] (log-
        uniform), at a random place, resized back to the full size (Inception-style crop)."""
        n, _, h, w = x.shape
        area = min_scale + (1 - min_scale) * self._rand(n)
        ratio = torch.exp((self._rand(n) * 2 - 1) * torch.log(torch.tensor(4 / 3)))
        bw = (area * ratio).sqrt().clamp(max=1.0)
        bh = (area / ratio).sqrt().clamp(max=1.0)
        cx = bw / 2 + (1 - bw) * self._rand(n)
        cy = bh / 2 + (1 - bh) * self._rand(n)
        # An affine grid per image maps the output square onto its box (coordinates in [-1, 1]).
        theta = torch.zeros(n, 2, 3)
        theta[:, 0, 0], theta[:, 0, 2] = bw, cx * 2 - 1
        theta[:, 1, 1], theta[:, 1, 2] = bh, cy * 2 - 1
        grid = F.affine_grid(theta, [n, 3, h, w], align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)

    def _jitter(self, x: torch.Tensor, strength: float) -> torch.Tensor:
        """Brightness, contrast and saturation, each scaled by U(1 - s, 1 + s) per image."""
        n = len(x)
        factor = lambda: (1 + strength * (self._rand(n) * 2 - 1)).view(-1, 1, 1, 1)  # noqa: E731
        x = x * factor()
        mean = x.mean(dim=(1, 2, 3), keepdim=True)
        x = mean + (x - mean) * factor()
        gray = (x * torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)).sum(1, keepdim=True)
        return gray + (x - gray) * factor()

    def _mix(self, batch: dict) -> dict:
        """Mixup (Zhang et al. 2018) or cutmix (Yun et al. 2019) with a shuffled copy of the batch."""
        cfg, x, labels = self.cfg, batch["pixel_values"], batch["labels"]
        use_cutmix = cfg.cutmix > 0 and (cfg.mixup == 0 or bool(self._rand(1) < 0.5))
        alpha = cfg.cutmix if use_cutmix else cfg.mixup
        lam = self._beta(alpha)
        perm = torch.randperm(len(x), generator=self.generator)
        if use_cutmix:
            _, _, h, w = x.shape
            cut = (1 - lam) ** 0.5
            ch, cw = int(h * cut), int(w * cut)
            top = int(self._rand(1) * (h - ch + 1))
            left = int(self._rand(1) * (w - cw + 1))
            x = x.clone()
            x[:, :, top:top + ch, left:left + cw] = x[perm][:, :, top:top + ch, left:left + cw]
            lam = 1 - ch * cw / (h * w)  # the share actually kept
        else:
            x = lam * x + (1 - lam) * x[perm]
        onehot = F.one_hot(labels, self.num_labels).float()
        return {**batch, "pixel_values": x, "labels": lam * onehot + (1 - lam) * onehot[perm]}

    def _beta(self, alpha: float) -> float:
        # Beta(a, a) from two seeded Gamma draws, so the batch generator alone decides it.
        g1 = self._gamma(alpha)
        g2 = self._gamma(alpha)
        return float(g1 / (g1 + g2))

    def _gamma(self, alpha: float) -> torch.Tensor:
        # Marsaglia-Tsang for alpha >= 1; boosted by U^(1/alpha) below it.
        boost = alpha < 1
        a = alpha + 1 if boost else alpha
        d = a - 1 / 3
        c = 1 / (9 * d) ** 0.5
        while True:
            z = torch.randn(1, generator=self.generator)
            v = (1 + c * z) ** 3
            if v > 0 and torch.log(self._rand(1)) < 0.5 * z * z + d - d * v + d * torch.log(v):
                g = d * v
                return g * self._rand(1) ** (1 / alpha) if boost else g
