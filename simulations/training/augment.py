"""CIFAR data augmentation of Luo et al. (2019): random 32x32 crop of the 4-pixel padded image and random
horizontal flip, drawn from an explicit ``torch.Generator`` so that a seed fixes every batch.

Luo et al. crop (torchvision ``RandomCrop(32, padding=4)``) *before* ``Normalize``, so the padding is black
(intensity 0). Here the images are already standardised, so the padding must be each channel's standardised
value of intensity 0, ``-mean / std``: pass it as ``fill`` (the loaders provide it as
:attr:`~simulations.training.datasets.ArrayDataset.pad_value`). Padding standardised images with 0 would pad
with the channel mean instead."""

from __future__ import annotations

import torch
from torch.nn import functional as F

__all__ = ["random_crop_flip"]


def random_crop_flip(
    x: torch.Tensor, generator: torch.Generator, padding: int = 4, fill: torch.Tensor | None = None
) -> torch.Tensor:
    """Randomly crop (after padding) and horizontally flip a batch of images.

    Parameters
    ----------
    x : Tensor, shape (N, C, H, W)
        Images on any device.
    generator : torch.Generator
        CPU generator the offsets and flips are drawn from.
    padding : int
        Padding on each side before cropping back to ``(H, W)``.
    fill : Tensor, shape (C,), optional
        Value of the padding per channel (for standardised images: ``-mean / std``, i.e. black); ``None``
        pads with 0.

    Returns
    -------
    Tensor, shape (N, C, H, W)
    """
    if x.ndim != 4:
        raise ValueError(f"x must have shape (N, C, H, W), got {tuple(x.shape)}")
    if padding < 0:
        raise ValueError(f"padding must be >= 0, got {padding!r}")
    n, _, h, w = x.shape
    dy = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    dx = torch.randint(0, 2 * padding + 1, (n,), generator=generator).to(x.device)
    flip = (torch.rand(n, generator=generator) < 0.5).to(x.device)
    if fill is None:
        padded = F.pad(x, (padding, padding, padding, padding))
    else:
        fill = torch.as_tensor(fill, dtype=x.dtype, device=x.device)
        if fill.shape != (x.shape[1],):
            raise ValueError(f"fill must have one value per channel, shape ({x.shape[1]},), got {tuple(fill.shape)}")
        padded = fill[None, :, None, None].expand(n, -1, h + 2 * padding, w + 2 * padding).clone()
        padded[:, :, padding : padding + h, padding : padding + w] = x
    rows = dy[:, None] + torch.arange(h, device=x.device)  # (N, H)
    cols = dx[:, None] + torch.arange(w, device=x.device)  # (N, W)
    cols = torch.where(flip[:, None], cols.flip(1), cols)
    batch = torch.arange(n, device=x.device)[:, None, None]
    out = padded.permute(0, 2, 3, 1)[batch, rows[:, :, None], cols[:, None, :]]  # (N, H, W, C)
    return out.permute(0, 3, 1, 2).contiguous()
