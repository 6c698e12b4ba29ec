"""The causal video autoencoder: shapes, causality, chunked and tiled decode, errors, learning, losses."""

import numpy as np
import pytest
import torch

from kinema.config import VAEConfig
from kinema.errors import InputError
from kinema.models.losses import psnr, ssim, vae_loss
from kinema.models.vae import VideoAutoencoder, fit_latent_stats, fold_space_time, unfold_space_time

TINY = VAEConfig(
    latent_channels=4, base_channels=8, channel_mult=(1, 2, 2), encoder_blocks=(1, 1, 1), decoder_blocks=(1, 1, 1)
)


def tiny_model(seed: int = 0) -> VideoAutoencoder:
    """A tiny model whose zero-initialised layers are made non-zero, so every conv shapes the output."""
    torch.manual_seed(seed)
    model = VideoAutoencoder(TINY).eval()
    with torch.no_grad():
        for p in model.parameters():
            if not p.any():
                p.normal_(0, 0.05)
    return model


def moving_shapes(batch: int, frames: int, height: int, width: int, seed: int = 0) -> torch.Tensor:
    """Coloured squares sliding over flat backgrounds: (B, 3, T, H, W) in [-1, 1]."""
    g = torch.Generator().manual_seed(seed)
    ys = torch.arange(height).view(height, 1)
    xs = torch.arange(width).view(1, width)
    video = torch.empty(batch, 3, frames, height, width)
    for b in range(batch):
        background, colour = torch.rand(2, 3, generator=g) * 2 - 1
        y0, x0 = torch.randint(0, height // 2, (2,), generator=g).tolist()
        size = max(4, height // 4)
        for t in range(frames):
            top, left = y0 + t, x0 + t
            inside = (ys >= top) & (ys < top + size) & (xs >= left) & (xs < left + size)
            video[b, :, t] = torch.where(inside, colour.view(3, 1, 1), background.view(3, 1, 1))
    return video


@pytest.mark.parametrize(
    ("frames", "height", "width"),
    [(1, 16, 16), (5, 32, 48), (9, 48, 32), (17, 16, 16), (1, 48, 32)],
)
def test_shapes_for_images_and_clips(frames, height, width):
    model = tiny_model()
    video = torch.rand(2, 3, frames, height, width) * 2 - 1
    with torch.no_grad():
        z = model.encode_latent(video)
        assert z.shape == (2, 4, 1 + (frames - 1) // 4, height // 8, width // 8)
        assert model.latent_shape(frames, height, width) == z.shape[1:]
        out = model.decode_latent(z)
    assert out.shape == video.shape
    assert out.min() >= -1 and out.max() <= 1


def test_encoding_is_causal():
    model = tiny_model()
    video = torch.rand(1, 3, 17, 32, 32) * 2 - 1
    with torch.no_grad():
        whole = model.encode_latent(video)
        for m in (0, 1, 2):
            prefix = model.encode_latent(video[:, :, : 1 + 4 * m])
            torch.testing.assert_close(prefix, whole[:, :, : 1 + m], atol=1e-5, rtol=0)
        # Changing later frames leaves earlier latents alone.
        edited = video.clone()
        edited[:, :, 9:] = -edited[:, :, 9:]
        later = model.encode_latent(edited)
    torch.testing.assert_close(later[:, :, :3], whole[:, :, :3], atol=1e-5, rtol=0)
    assert not torch.allclose(later[:, :, 3:], whole[:, :, 3:], atol=1e-3)


@pytest.mark.parametrize("chunk_frames", [1, 2, 3])
def test_chunked_decode_equals_whole_decode(chunk_frames):
    model = tiny_model()
    z = torch.randn(1, 4, 7, 4, 6)  # 25 frames
    with torch.no_grad():
        whole = model.decode_latent(z, chunk_frames=None)
        chunked = model.decode_latent(z, chunk_frames=chunk_frames)
        streamed = torch.cat(list(model.iter_decode(model.denormalise(z), chunk_frames)), dim=2)
    assert whole.shape == (1, 3, 25, 32, 48)
    torch.testing.assert_close(chunked, whole, atol=1e-4, rtol=0)
    torch.testing.assert_close(streamed.clamp(-1, 1), whole, atol=1e-4, rtol=0)


def test_decoding_is_causal_in_latent_time():
    model = tiny_model()
    z = torch.randn(1, 4, 4, 4, 4)
    with torch.no_grad():
        whole = model.decode_latent(z, chunk_frames=None)
        prefix = model.decode_latent(z[:, :, :2], chunk_frames=None)
    torch.testing.assert_close(prefix, whole[:, :, :5], atol=1e-5, rtol=0)


def test_tiled_decode_is_close_to_whole_decode():
    model = tiny_model()
    with torch.no_grad():
        z = model.encode_latent(moving_shapes(1, 5, 128, 96))  # latent 16 x 12: two tiles of 12, rows 0-11, 4-15
        whole = model.decode_latent(z, tile_latent=None)
        tiled = model.decode_tiled(z, tile_latent=12, overlap_latent=8, chunk_frames=1)
        auto = model.decode_latent(z, tile_latent=12)  # beyond 12 latents decode_latent tiles by itself
        same_tiles = model.decode_tiled(z, tile_latent=12, chunk_frames=None)
    assert tiled.shape == whole.shape == auto.shape
    torch.testing.assert_close(auto, same_tiles, atol=1e-4, rtol=0)
    # Far from the seam a tile sees all it needs; across the seam the blend stays close.
    torch.testing.assert_close(tiled[..., :24, :], whole[..., :24, :], atol=1e-4, rtol=0)
    assert psnr(tiled, whole) > 35


@pytest.mark.parametrize(
    ("frames", "height", "width", "words"),
    [(17, 40, 32, "multiples of 16"), (17, 32, 24, "multiples of 16"), (4, 32, 32, r"1\+4k"), (16, 32, 32, "17")],
)
def test_bad_sizes_raise_input_error(frames, height, width, words):
    model = tiny_model()
    with pytest.raises(InputError, match=words):
        model.encode_latent(torch.zeros(1, 3, frames, height, width))


def test_bad_tensor_layouts_raise_input_error():
    model = tiny_model()
    with pytest.raises(InputError, match="video tensor"):
        model.encode(torch.zeros(3, 5, 32, 32))
    with pytest.raises(InputError, match="latent tensor"):
        model.decode_latent(torch.zeros(1, 3, 2, 4, 4))
    with pytest.raises(InputError, match="chunk_frames"):
        model.decode_latent(torch.zeros(1, 4, 2, 4, 4), chunk_frames=0)


def test_a_few_steps_on_one_clip_reduce_the_loss():
    torch.manual_seed(0)
    model = VideoAutoencoder(TINY)
    clip = moving_shapes(1, 5, 16, 16)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(12):
        rec, posterior = model(clip, generator=torch.Generator().manual_seed(0))
        loss, parts = vae_loss(rec, clip, posterior.mean, posterior.logvar, ssim_weight=0.1)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert set(parts) >= {"loss", "l1", "ssim", "kl", "psnr"}
    assert losses[-1] < 0.6 * losses[0]


def test_fit_latent_stats_gives_unit_scale():
    model = tiny_model()
    videos = [moving_shapes(2, 5, 32, 32, seed=s) for s in range(3)]
    shift, scale = fit_latent_stats(model, videos)
    model.cfg.latent_shift, model.cfg.latent_scale = shift, scale
    with torch.no_grad():
        z = torch.cat([model.encode_latent(v) for v in videos])
        restored = model.decode_latent(z)
        raw = model.decode(model.encode(videos[0]).mean)
    assert abs(z.mean().item()) < 1e-3 and abs(z.std().item() - 1) < 0.02
    torch.testing.assert_close(restored[:2], raw.clamp(-1, 1), atol=1e-4, rtol=0)


def test_default_config_fits_the_parameter_budget():
    model = VideoAutoencoder(VAEConfig())
    assert 3_000_000 <= model.num_params() <= 5_000_000


def test_metrics_agree_on_floats_and_uint8():
    video = moving_shapes(1, 3, 32, 32)
    noisy = (video + 0.1 * torch.randn(video.shape, generator=torch.Generator().manual_seed(1))).clamp(-1, 1)
    assert psnr(video, video) > 90 and ssim(video, video).item() == pytest.approx(1.0, abs=1e-5)
    assert 15 < psnr(video, noisy) < 30 and ssim(video, noisy) < 0.95

    def to_uint8(v: torch.Tensor) -> np.ndarray:
        return ((v[0] + 1) * 127.5).round().byte().permute(1, 2, 3, 0).numpy()  # (T, H, W, 3)

    assert psnr(to_uint8(video), to_uint8(noisy)).item() == pytest.approx(psnr(video, noisy).item(), abs=0.2)
    assert ssim(to_uint8(video), to_uint8(noisy)).item() == pytest.approx(ssim(video, noisy).item(), abs=0.01)


def test_fold_and_unfold_are_inverse_and_causal():
    x = torch.randn(2, 3, 9, 8, 12)
    folded = fold_space_time(x)
    assert folded.shape == (2, 24, 5, 4, 6)
    torch.testing.assert_close(unfold_space_time(folded)[:, :, 1:], x, rtol=0, atol=0)
    # Folded frame k only holds input frames up to 2k.
    changed = x.clone()
    changed[:, :, 5:] += 1
    assert torch.equal(fold_space_time(changed)[:, :, :3], folded[:, :, :3])


def test_shortcut_model_starts_as_a_box_filter_codec():
    """At initialisation, a video that is constant over each 8x8 block and still in time comes back exactly."""
    model = VideoAutoencoder(VAEConfig()).eval()
    blocks = torch.rand(1, 3, 1, 4, 6, generator=torch.Generator().manual_seed(0)) * 2 - 1
    video = blocks.repeat_interleave(8, 3).repeat_interleave(8, 4).expand(-1, -1, 9, -1, -1)
    with torch.no_grad():
        reconstruction = model.decode(model.encode(video).mean)
    torch.testing.assert_close(reconstruction, video, atol=1e-5, rtol=0)
    plain = VideoAutoencoder(VAEConfig(shortcuts=False)).eval()
    with torch.no_grad():
        assert (plain.decode(plain.encode(video).mean) - video).abs().max() > 0.1


def test_squared_error_loss_weights():
    target = moving_shapes(1, 5, 16, 16)
    rec = target + 0.1
    zeros = torch.zeros(1, 4, 2, 2, 2)
    loss, parts = vae_loss(rec, target, zeros, zeros, kl_weight=0.0)
    assert loss.item() == pytest.approx(0.01, rel=1e-4)  # MSE only by default
    loss, _ = vae_loss(rec, target, zeros, zeros, kl_weight=0.0, mse_weight=0.0, l1_weight=1.0)
    assert loss.item() == pytest.approx(0.1, rel=1e-4)
    assert parts["psnr"] == pytest.approx(10 * np.log10(4 / 0.01), rel=1e-4)
