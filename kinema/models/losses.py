"""Autoencoder losses and image metrics as pure functions: no downloaded network needed.

Tensors are float in [-1, 1], channels first: (B, C, T, H, W) videos or (B, C, H, W) images. uint8
arrays or tensors are frames as io reads them, (..., H, W, 3), and are converted first.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F


def _as_frames(x: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Any accepted input -> float frames (N, C, H, W) in [-1, 1]."""
    if isinstance(x, np.ndarray):
        x = torch.from_numpy(np.ascontiguousarray(x))
    if x.dtype == torch.uint8:
        x = x.float() / 127.5 - 1.0  # (..., H, W, 3)
        x = x.reshape(-1, *x.shape[-3:]).permute(0, 3, 1, 2)
    elif x.ndim == 5:
        x = x.transpose(1, 2).flatten(0, 1)  # (B, C, T, H, W) -> (B*T, C, H, W)
    elif x.ndim == 3:
        x = x[None]
    return x.float()


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(coords**2) / (2 * sigma**2))
    return g / g.sum()


def ssim(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray, window: int = 11) -> torch.Tensor:
    """Mean structural similarity (Gaussian 11x11, sigma 1.5) over frames and channels; differentiable."""
    x, y = _as_frames(a), _as_frames(b)
    if x.shape != y.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    window = min(window, x.shape[-1], x.shape[-2])
    c = x.shape[1]
    g = _gaussian_window(window).to(x)
    kernel_h = g.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kernel_w = g.view(1, 1, 1, -1).expand(c, 1, 1, -1)

    def blur(t: torch.Tensor) -> torch.Tensor:
        return F.conv2d(F.conv2d(t, kernel_h, groups=c), kernel_w, groups=c)

    c1, c2 = (0.01 * 2.0) ** 2, (0.03 * 2.0) ** 2  # data range 2 for [-1, 1]
    mu_x, mu_y = blur(x), blur(y)
    var_x = blur(x * x) - mu_x**2
    var_y = blur(y * y) - mu_y**2
    cov = blur(x * y) - mu_x * mu_y
    score = ((2 * mu_x * mu_y + c1) * (2 * cov + c2)) / ((mu_x**2 + mu_y**2 + c1) * (var_x + var_y + c2))
    return score.mean()


def psnr(a: torch.Tensor | np.ndarray, b: torch.Tensor | np.ndarray) -> torch.Tensor:
    """Peak signal-to-noise ratio in dB (peak-to-peak 2 on [-1, 1]; same as 255 on uint8), per frame then mean."""
    x, y = _as_frames(a), _as_frames(b)
    mse = (x - y).pow(2).flatten(1).mean(1).clamp_min(1e-10)  # (N,)
    return (10.0 * torch.log10(4.0 / mse)).mean()


def vae_loss(
    reconstruction: torch.Tensor,
    target: torch.Tensor,
    mean: torch.Tensor,
    logvar: torch.Tensor,
    kl_weight: float = 1e-6,
    ssim_weight: float = 0.0,
    l1_weight: float = 0.0,
    mse_weight: float = 1.0,
) -> tuple[torch.Tensor, dict[str, float]]:
    """mse_weight * MSE + l1_weight * L1 + ssim_weight * (1 - SSIM) + kl_weight * KL -> (loss, parts).

    The KL is averaged per latent element, the others per pixel.
    """
    reconstruction = reconstruction.float()
    error = reconstruction - target
    l1 = error.abs().mean()
    mse = error.pow(2).mean()
    structure = 1.0 - ssim(reconstruction, target) if ssim_weight else reconstruction.new_zeros(())
    kl = 0.5 * (mean.pow(2) + logvar.exp() - 1.0 - logvar).mean()
    loss = mse_weight * mse + l1_weight * l1 + ssim_weight * structure + kl_weight * kl
    with torch.no_grad():
        mse = mse.detach().clamp_min(1e-10)
        parts = {
            "loss": loss.item(),
            "l1": l1.item(),
            "kl": kl.item(),
            "psnr": 10.0 * math.log10(4.0 / mse.item()),
        }
        if ssim_weight:
            parts["ssim"] = 1.0 - structure.item()
    return loss, parts
