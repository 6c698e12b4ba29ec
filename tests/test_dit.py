import dataclasses

import pytest
import torch

from kinema.config import DiTConfig
from kinema.errors import ConfigError, InputError
from kinema.flow import flow_loss, noisy_latent, sample_timesteps
from kinema.models.dit import DiffusionTransformer, apply_rope, rope_cos_sin, rope_positions


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run many times faster on one thread, above all on a shared, loaded machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


TINY = DiTConfig(latent_channels=4, depth=2, width=64, heads=2, mlp_ratio=2.0, text_dim=16)


def make_model(cfg: DiTConfig = TINY, live: bool = True, seed: int = 0) -> DiffusionTransformer:
    """A tiny model; `live` replaces the adaLN-zero init so the output is not identically zero."""
    torch.manual_seed(seed)
    model = DiffusionTransformer(cfg)
    if live:
        with torch.no_grad():
            for name, p in model.named_parameters():
                if "modulation" in name or name.startswith("final.linear"):
                    p.normal_(0, 0.05)
    return model.eval()


def inputs(B: int = 2, T: int = 2, H: int = 4, W: int = 6, L: int = 5, C: int = 4, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, C, T, H, W, generator=g)
    t = torch.rand(B, generator=g)
    text = torch.randn(B, L, 16, generator=g)
    mask = torch.ones(B, L, dtype=torch.bool)
    return x, t, text, mask


@pytest.mark.parametrize("T,H,W", [(1, 2, 2), (1, 4, 8), (3, 4, 6), (5, 6, 2), (2, 8, 8)])
def test_output_shape_any_size_and_length(T, H, W):
    model = make_model()
    x, t, text, mask = inputs(T=T, H=H, W=W)
    known = torch.randn_like(x)
    known_mask = torch.zeros(2, 1, T, 1, 1)
    known_mask[:, :, 0] = 1
    with torch.no_grad():
        out = model(x, t, text, mask, known, known_mask)
    assert out.shape == x.shape
    assert torch.isfinite(out).all()


@pytest.mark.parametrize("shared", [True, False])
def test_param_count_matches_architecture(shared):
    model = make_model(dataclasses.replace(TINY, shared_modulation=shared), live=False)
    D, C, E, hd, hidden, pv = 64, 4, 16, 32, 128, 4
    cin = 2 * C + 1
    embed = (cin * pv * D + D) + (256 * D + D + D * D + D) + 2 * (E * D + D + D * D + D)
    block = (
        (3 * D * D + 3 * D) + 2 * hd + (D * D + D)  # self-attention
        + 2 * D  # cross-attention pre-norm
        + (D * D + D) + (2 * D * D + 2 * D) + 2 * hd + (D * D + D)  # cross-attention
        + (D * hidden + hidden + hidden * D + D)  # MLP
        + (6 * D if shared else 6 * D * D + 6 * D)  # adaLN: the block's table, or its own projection
    )
    final = (2 * D * D + 2 * D) + (D * pv * C + pv * C)
    expected = embed + 2 * block + final + (6 * D * D + 6 * D if shared else 0)
    print(f"tiny DiT parameters: {model.num_params():,}")
    assert model.num_params() == expected == sum(p.numel() for p in model.parameters())


def test_zero_init_gives_zero_velocity():
    model = make_model(live=False)
    x, t, text, mask = inputs()
    with torch.no_grad():
        out = model(x, t, text, mask)
    assert torch.equal(out, torch.zeros_like(x))


def test_rope_scores_depend_only_on_relative_position():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(1, 2, 3 * 4 * 5, 32, generator=g)
    k = torch.randn(1, 2, 3 * 4 * 5, 32, generator=g)

    def scores(offset=(0, 0, 0), scale=1.0):
        cos, sin = rope_cos_sin(rope_positions((3, 4, 5), offset=offset) * scale, 32)
        return apply_rope(q, cos, sin) @ apply_rope(k, cos, sin).transpose(-1, -2)

    base = scores()
    assert torch.allclose(base, scores(offset=(7, -3, 11)), atol=1e-4)
    # Stretching the positions changes relative offsets, so the scores must change.
    assert not torch.allclose(base, scores(scale=2.0), atol=1e-2)
    # Rotation keeps lengths.
    cos, sin = rope_cos_sin(rope_positions((3, 4, 5)), 32)
    assert torch.allclose(apply_rope(q, cos, sin).norm(dim=-1), q.norm(dim=-1), atol=1e-4)


def test_model_sees_positions():
    """Swapping two frames' content must not just swap the output: tokens know where they are."""
    model = make_model()
    x, t, text, mask = inputs(T=3)
    with torch.no_grad():
        out = model(x, t, text, mask)
        out_swapped = model(x.flip(2), t, text, mask).flip(2)
    assert not torch.allclose(out, out_swapped, atol=1e-4)


def test_text_padding_is_ignored():
    model = make_model()
    x, t, text, mask = inputs(L=6)
    mask[:, 3:] = False
    padded = text.clone()
    padded[:, 3:] = torch.randn_like(padded[:, 3:]) * 10
    changed = text.clone()
    changed[:, 1] += 1.0
    with torch.no_grad():
        out = model(x, t, text, mask)
        assert torch.allclose(out, model(x, t, padded, mask), atol=1e-5)
        assert not torch.allclose(out, model(x, t, changed, mask), atol=1e-4)
        no_text = model(x, t, text, torch.zeros_like(mask))
    assert torch.isfinite(no_text).all()


def test_known_latent_only_counts_where_known():
    model = make_model()
    x, t, text, mask = inputs(T=3)
    known = torch.randn_like(x)
    known_mask = torch.zeros(2, 1, 3, 1, 1)
    known_mask[:, :, 0] = 1
    other = known.clone()
    other[:, :, 1:] = torch.randn_like(other[:, :, 1:])
    with torch.no_grad():
        out = model(x, t, text, mask, known, known_mask)
        assert torch.equal(out, model(x, t, text, mask, other, known_mask))
        other[:, :, 0] += 1.0
        assert not torch.allclose(out, model(x, t, text, mask, other, known_mask), atol=1e-4)


def test_deterministic():
    x, t, text, mask = inputs()
    with torch.no_grad():
        a = make_model(seed=3)(x, t, text, mask)
        b = make_model(seed=3)(x, t, text, mask)
    assert torch.equal(a, b)


def test_bf16_autocast_close_to_fp32():
    model = make_model()
    x, t, text, mask = inputs()
    with torch.no_grad():
        ref = model(x, t, text, mask)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = model(x, t, text, mask)
    assert out.dtype == torch.float32 and out.shape == ref.shape
    assert (out - ref).norm() / ref.norm() < 0.05


def test_gradient_checkpointing_gives_same_gradients():
    x, t, text, mask = inputs()
    grads = []
    for enabled in (False, True):
        model = make_model().train()
        model.enable_gradient_checkpointing(enabled)
        model(x, t, text, mask).square().mean().backward()
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters() if p.grad is not None]))
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


def test_bad_sizes_raise_input_error():
    model = make_model()
    x, t, text, mask = inputs(H=5)
    with pytest.raises(InputError, match="multiples of 16"):
        model(x, t, text, mask)
    x, t, text, mask = inputs()
    with pytest.raises(InputError, match="text states"):
        model(x, t, text[..., :8], mask)
    with pytest.raises(ConfigError):
        DiffusionTransformer(DiTConfig(width=64, heads=3))


def test_overfits_one_batch():
    torch.manual_seed(0)
    model = DiffusionTransformer(TINY).train()
    g = torch.Generator().manual_seed(0)
    x0 = torch.randn(2, 4, 2, 4, 4, generator=g)
    noise = torch.randn(2, 4, 2, 4, 4, generator=g)
    text = torch.randn(2, 4, 16, generator=g)
    mask = torch.ones(2, 4, dtype=torch.bool)
    known_mask = torch.tensor([0.0, 1.0]).view(2, 1, 1, 1, 1) * torch.tensor([1.0, 0.0]).view(1, 1, 2, 1, 1)
    unknown = 1 - known_mask
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(100):
        t = sample_timesteps(2, generator=g)
        x_t = noisy_latent(x0, noise, t, known_mask)
        loss = flow_loss(model(x_t, t, text, mask, x0, known_mask), noise, x0, unknown)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    print(f"flow loss {losses[0]:.3f} -> {losses[-1]:.4f}")
    assert losses[-1] < 0.1 * losses[0]


def test_scalar_time_is_shared_by_the_batch():
    model = make_model()
    x, _, text, mask = inputs()
    with torch.no_grad():
        shared = model(x, torch.tensor(0.25), text, mask)
        assert torch.equal(shared, model(x, torch.full((2,), 0.25), text, mask))
    with pytest.raises(InputError, match="one time per sample"):
        model(x, torch.rand(3), text, mask)


def test_layout_basis_is_the_lowest_cosines_over_spacetime():
    from kinema.models.dit import layout_basis

    basis = layout_basis(3, 4, 5, 2, torch.zeros(()))
    assert basis.shape == (8, 3, 4, 5)
    assert torch.equal(basis[0], torch.ones(3, 4, 5))  # the mean
    assert basis[1, 0, 0].tolist() == pytest.approx([1, 0.7071, 0, -0.7071, -1], abs=1e-4)  # left to right
    assert torch.allclose(basis[4][:, 0, 0], torch.tensor([1.0, 0.0, -1.0]), atol=1e-6)  # first to last frame


def test_layout_prior_starts_silent_and_learns_where_each_prompt_puts_things():
    """Near pure noise the best clean estimate is the prompt's mean video; two prompts whose videos are
    mirror images must get mirrored estimates from the same noise."""
    cfg = dataclasses.replace(TINY, layout_prior=2)
    plain = make_model(dataclasses.replace(TINY, layout_prior=0), live=True)
    model = make_model(cfg, live=True)
    model.load_state_dict({**plain.state_dict(), **{k: v for k, v in model.state_dict().items() if "layout" in k}})
    x, _, text, mask = inputs()
    with torch.no_grad():
        assert torch.equal(model(x, torch.ones(2), text, mask), plain(x, torch.ones(2), text, mask))
    ramp = torch.linspace(-1, 1, 4).view(1, 1, 1, 1, 4)
    x0 = torch.cat([ramp, -ramp]).expand(2, 4, 2, 4, 4)  # bright on the right for one prompt, left for the other
    optimizer = torch.optim.Adam([p for n, p in model.named_parameters() if n.startswith("layout")], lr=0.05)
    g = torch.Generator().manual_seed(0)
    for _ in range(60):
        noise = torch.randn(2, 4, 2, 4, 4, generator=g)
        loss = flow_loss(model(noise, torch.ones(2), text, mask), noise, x0)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    noise = torch.randn(1, 4, 2, 4, 4, generator=g).expand(2, -1, -1, -1, -1)
    with torch.no_grad():
        estimate = noise - model(noise, torch.ones(2), text, mask)  # clean estimate at t = 1
    contrast = estimate[..., -1].mean(dim=(1, 2, 3)) - estimate[..., 0].mean(dim=(1, 2, 3))
    assert contrast[0] > 1 and contrast[1] < -1  # right minus left: each follows its own prompt
