"""Rectified flow: x_t = (1 - t) * x0 + t * noise, velocity = noise - x0, t = 1 is pure noise."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from kinema.errors import CancelledError, InputError

# model_fn(x, t, cond) -> velocity; t is (B,), cond False means the unconditional (empty prompt) branch.
ModelFn = Callable[[torch.Tensor, torch.Tensor, bool], torch.Tensor]


def noise_like(
    shape: Sequence[int], seed: int, device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32
) -> torch.Tensor:
    """Gaussian noise fixed by `seed`; drawn on the CPU so every device gets the same numbers."""
    generator = torch.Generator(device="cpu").manual_seed(seed)
    return torch.randn(tuple(shape), generator=generator, dtype=torch.float32).to(device, dtype)


def sample_timesteps(
    batch: int, generator: torch.Generator | None = None, mean: float = 0.0, std: float = 1.0
) -> torch.Tensor:
    """Training times from a logit-normal distribution, (batch,) in (0, 1)."""
    return torch.sigmoid(mean + std * torch.randn(batch, generator=generator))


def shift_for_tokens(
    num_tokens: int,
    base_tokens: int = 256,
    base_shift: float = 1.0,
    max_tokens: int = 4096,
    max_shift: float = 3.0,
) -> float:
    """Time shift for a latent of `num_tokens` tokens: linear in tokens, never below `base_shift`.

    Bigger latents keep more of their signal at a given noise level, so they spend more steps at high noise.
    """
    slope = (max_shift - base_shift) / (max_tokens - base_tokens)
    return max(base_shift, base_shift + slope * (num_tokens - base_tokens))


def apply_shift(t: torch.Tensor | float, shift: float) -> torch.Tensor | float:
    """Warp times towards noise: t' = s * t / (1 + (s - 1) * t); keeps 0 and 1 fixed."""
    return shift * t / (1 + (shift - 1) * t)


def noisy_latent(
    x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor, known_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """x_t for per-sample times t (B,); known frames (mask 1) stay clean, as the sampler keeps them."""
    t = t.to(x0.dtype).view(-1, *([1] * (x0.ndim - 1)))
    x_t = (1 - t) * x0 + t * noise
    if known_mask is not None:
        x_t = torch.where(known_mask.bool(), x0, x_t)
    return x_t


def flow_loss(
    pred_velocity: torch.Tensor, noise: torch.Tensor, x0: torch.Tensor, unknown_mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Mean squared velocity error over the unknown frames only.

    unknown_mask: (B, 1, T, 1, 1) or anything broadcastable to the latent, 1 where the frame is generated.
    """
    error = (pred_velocity.float() - (noise - x0).float()).square()
    if unknown_mask is None:
        return error.mean()
    weight = unknown_mask.to(error.dtype).expand_as(error)
    return (error * weight).sum() / weight.sum().clamp_min(1.0)


def get_schedule(steps: int, shift: float = 1.0) -> torch.Tensor:
    """steps + 1 times from 1 (noise) down to 0 (data), warped by `shift`."""
    if steps < 1:
        raise InputError(f"steps must be at least 1, got {steps}")
    return apply_shift(torch.linspace(1.0, 0.0, steps + 1, dtype=torch.float64), shift).float()


@torch.no_grad()
def euler_sample(
    model_fn: ModelFn,
    noise: torch.Tensor,
    schedule: torch.Tensor,
    guidance_scale: float,
    progress: Callable[[int, int], None] | None = None,
    cancel: Callable[[], bool] | None = None,
    known_latent: torch.Tensor | None = None,
    known_mask: torch.Tensor | None = None,
    preview: Callable[[int, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Integrate the flow from noise (t = schedule[0]) to data with Euler steps and classifier-free guidance.

    Known frames (known_mask 1) are set to `known_latent` before every step and at the end. `cancel()` is
    polled between steps; `progress(step, total)` and `preview(step, x0_estimate)` follow each step.
    """
    if (known_latent is None) != (known_mask is None):
        raise InputError("known_latent and known_mask must be given together")
    known = known_mask.bool() if known_mask is not None else None
    x = noise
    total = len(schedule) - 1
    for step in range(total):
        if cancel is not None and cancel():
            raise CancelledError(f"generation cancelled after {step} of {total} steps")
        if known is not None:
            x = torch.where(known, known_latent.to(x.dtype), x)
        t_now, t_next = float(schedule[step]), float(schedule[step + 1])
        t = torch.full((x.shape[0],), t_now, device=x.device, dtype=torch.float32)
        velocity = model_fn(x, t, True)
        if guidance_scale != 1.0:
            velocity_uncond = model_fn(x, t, False)
            velocity = velocity_uncond + guidance_scale * (velocity - velocity_uncond)
        if preview is not None:
            preview(step + 1, x - t_now * velocity)
        x = x + (t_next - t_now) * velocity
        if progress is not None:
            progress(step + 1, total)
    if known is not None:
        x = torch.where(known, known_latent.to(x.dtype), x)
    return x
