"""A tiny randomly initialised checkpoint for fast end-to-end tests of every path."""

from __future__ import annotations

from pathlib import Path

import torch

from kinema.checkpoint import save_checkpoint
from kinema.config import DiTConfig, ModelConfig, SamplingConfig, VAEConfig


def tiny_config() -> ModelConfig:
    """Small enough that a whole generation takes well under a second."""
    return ModelConfig(
        name="tiny",
        # Random latents decode to saturated noise at scale 1, which no watermark survives; a quarter of it
        # keeps the tiny model's frames inside the colour range, as a trained model's are.
        vae=VAEConfig(base_channels=8, latent_scale=4.0),
        dit=DiTConfig(depth=1, width=32, heads=2),
        sampling=SamplingConfig(steps=2, guidance_scale=2.0, width=32, height=32, fps=8.0, min_side=16,
                                max_side=64, window_frames=9, context_latent_frames=1),
    )


def make_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Write a random tiny checkpoint folder."""
    from kinema.models.dit import DiffusionTransformer
    from kinema.models.vae import VideoAutoencoder

    cfg = tiny_config()
    torch.manual_seed(seed)
    dit = DiffusionTransformer(cfg.dit)
    # adaLN-zero makes a fresh model output exactly zero; perturb so tests see real sampling.
    with torch.no_grad():
        for p in dit.parameters():
            p.add_(torch.randn_like(p) * 0.02)
    vae = VideoAutoencoder(cfg.vae)
    return save_checkpoint(folder, cfg, dit.state_dict(), vae.state_dict(), card="# tiny\nrandom weights for tests\n")
