import pytest
import torch

from kinema.errors import CancelledError, InputError
from kinema.flow import (
    apply_shift,
    euler_sample,
    flow_loss,
    get_schedule,
    noise_like,
    noisy_latent,
    sample_timesteps,
    shift_for_tokens,
)


class CountingModel:
    """A fixed nonlinear velocity field that records every call."""

    def __init__(self):
        self.calls: list[bool] = []

    def __call__(self, x: torch.Tensor, t: torch.Tensor, cond: bool) -> torch.Tensor:
        self.calls.append(cond)
        return torch.tanh(x) * t.view(-1, 1, 1, 1, 1) + (0.3 if cond else -0.2)


def test_shift_grows_with_tokens_and_warps_towards_noise():
    shifts = [shift_for_tokens(n) for n in (64, 256, 320, 1024, 4096, 8192)]
    assert shifts == sorted(shifts)
    assert shift_for_tokens(256) == pytest.approx(1.0)
    assert shift_for_tokens(4096) == pytest.approx(3.0)
    t = torch.linspace(0, 1, 101)
    shifted = apply_shift(t, 3.0)
    assert torch.all(shifted[1:] > shifted[:-1])
    assert shifted[0] == 0 and shifted[-1] == 1
    assert torch.all(shifted >= t)
    assert torch.equal(apply_shift(t, 1.0), t)


def test_schedule_endpoints():
    for shift in (1.0, 3.0):
        schedule = get_schedule(10, shift)
        assert schedule.shape == (11,)
        assert schedule[0] == 1.0 and schedule[-1] == 0.0
        assert torch.all(schedule[1:] < schedule[:-1])
    with pytest.raises(InputError):
        get_schedule(0)


def test_timesteps_logit_normal_and_seeded():
    t = sample_timesteps(4000, generator=torch.Generator().manual_seed(0))
    assert t.shape == (4000,) and bool(((t > 0) & (t < 1)).all())
    assert abs(t.mean().item() - 0.5) < 0.02
    assert torch.equal(t, sample_timesteps(4000, generator=torch.Generator().manual_seed(0)))
    assert sample_timesteps(4000, generator=torch.Generator().manual_seed(0), mean=1.0).mean() > 0.65


def test_noise_like_is_seeded():
    assert torch.equal(noise_like((2, 3), seed=7), noise_like((2, 3), seed=7))
    assert not torch.equal(noise_like((2, 3), seed=7), noise_like((2, 3), seed=8))
    assert noise_like((2, 3), seed=7, dtype=torch.bfloat16).dtype == torch.bfloat16


def test_noisy_latent_endpoints_and_known_frames():
    x0, noise = torch.randn(2, 4, 3, 2, 2), torch.randn(2, 4, 3, 2, 2)
    assert torch.equal(noisy_latent(x0, noise, torch.zeros(2)), x0)
    assert torch.equal(noisy_latent(x0, noise, torch.ones(2)), noise)
    mask = torch.zeros(1, 1, 3, 1, 1)
    mask[:, :, 0] = 1
    x_t = noisy_latent(x0, noise, torch.full((2,), 0.5), mask)
    assert torch.equal(x_t[:, :, 0], x0[:, :, 0])
    assert torch.allclose(x_t[:, :, 1:], 0.5 * (x0 + noise)[:, :, 1:])


def test_loss_ignores_known_frames():
    g = torch.Generator().manual_seed(0)
    pred, noise, x0 = (torch.randn(2, 4, 3, 2, 2, generator=g) for _ in range(3))
    unknown = torch.ones(2, 1, 3, 1, 1)
    unknown[:, :, 0] = 0
    loss = flow_loss(pred, noise, x0, unknown)
    wild = pred.clone()
    wild[:, :, 0] = 1e3
    assert torch.equal(loss, flow_loss(wild, noise, x0, unknown))
    expected = (pred - (noise - x0))[:, :, 1:].square().mean()
    assert torch.allclose(loss, expected)
    assert torch.allclose(flow_loss(pred, noise, x0, torch.ones(2, 1, 3, 1, 1)), flow_loss(pred, noise, x0))
    assert flow_loss(pred, noise - x0 + x0, x0, torch.zeros(2, 1, 3, 1, 1)) == 0


def test_guidance_one_is_the_conditional_path_with_one_call_per_step():
    noise = noise_like((1, 4, 2, 2, 2), seed=0)
    schedule = get_schedule(6, 2.0)
    model = CountingModel()
    out = euler_sample(model, noise, schedule, guidance_scale=1.0)
    assert model.calls == [True] * 6
    x = noise
    for i in range(6):
        t = torch.full((1,), float(schedule[i]))
        x = x + (float(schedule[i + 1]) - float(schedule[i])) * model(x, t, True)
    assert torch.equal(out, x)


def test_guidance_mixes_conditional_and_unconditional():
    noise = noise_like((1, 4, 2, 2, 2), seed=0)
    schedule = get_schedule(1)
    model = CountingModel()
    out = euler_sample(model, noise, schedule, guidance_scale=4.0)
    assert sorted(model.calls) == [False, True]
    t = torch.ones(1)
    v_cond, v_uncond = model(noise, t, True), model(noise, t, False)
    assert torch.allclose(out, noise - (v_uncond + 4.0 * (v_cond - v_uncond)))


def test_exact_velocity_reaches_the_data():
    """For data that is a single point, the true velocity is (x - x0) / t; Euler then lands on x0."""
    x0 = torch.randn(1, 4, 2, 2, 2)
    out = euler_sample(lambda x, t, cond: (x - x0) / t.view(-1, 1, 1, 1, 1), torch.randn_like(x0),
                       get_schedule(8, 3.0), guidance_scale=1.0)
    assert torch.allclose(out, x0, atol=1e-5)


def test_known_frames_survive_sampling_exactly():
    noise = noise_like((2, 4, 4, 2, 2), seed=1)
    known = noise_like((2, 4, 4, 2, 2), seed=2)
    mask = torch.zeros(1, 1, 4, 1, 1)
    mask[:, :, 0] = mask[:, :, 3] = 1
    seen = []

    def model(x, t, cond):
        seen.append(torch.equal(x[:, :, [0, 3]], known[:, :, [0, 3]]))
        return torch.sin(3 * x) + 1.0

    out = euler_sample(model, noise, get_schedule(5), 3.0, known_latent=known, known_mask=mask)
    assert all(seen) and len(seen) == 10
    assert torch.equal(out[:, :, [0, 3]], known[:, :, [0, 3]])
    assert not torch.allclose(out[:, :, 1:3], known[:, :, 1:3])
    with pytest.raises(InputError):
        euler_sample(model, noise, get_schedule(2), 1.0, known_latent=known)


def test_cancel_progress_and_preview():
    model = CountingModel()
    steps, previews = [], []
    euler_sample(model, noise_like((1, 4, 1, 2, 2), 0), get_schedule(4), 1.0,
                 progress=lambda i, n: steps.append((i, n)), preview=lambda i, x: previews.append((i, x.shape)))
    assert steps == [(1, 4), (2, 4), (3, 4), (4, 4)]
    assert previews == [(i, (1, 4, 1, 2, 2)) for i in range(1, 5)]

    polls = []

    def cancel():
        polls.append(1)
        return len(polls) == 3

    model = CountingModel()
    with pytest.raises(CancelledError, match="after 2 of 5 steps"):
        euler_sample(model, noise_like((1, 4, 1, 2, 2), 0), get_schedule(5), 1.0, cancel=cancel)
    assert len(model.calls) == 2
