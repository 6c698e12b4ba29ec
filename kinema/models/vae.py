"""Causal 3-D convolutional video autoencoder: 4x in time, 8x in space, KL bottleneck, chunked decode.

The first frame is encoded alone, so an image is a one-frame video and 1+4k frames map to 1+k latent
frames. Every temporal convolution pads only the past, and every norm is per frame and position, so the
decoder can run a few latent frames at a time, carrying each causal convolution's last input frames
forward; chunked decoding then equals whole decoding and memory stays flat with duration.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kinema.config import VAEConfig
from kinema.errors import ConfigError, InputError

# Carried between decode chunks: per causal module, its last input frames (or a "first chunk done" flag).
CausalState = dict[nn.Module, torch.Tensor]


class RMSNorm(nn.Module):
    """RMS norm over channels at each position and frame, so it never mixes frames (chunk-exact)."""

    def __init__(self, channels: int, eps: float = 1e-6):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(channels))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, T, H, W) viewed as (B, T, H, W, C): free when x is channels_last_3d.
        y = F.rms_norm(x.permute(0, 2, 3, 4, 1), (x.shape[1],), self.weight.to(x.dtype), self.eps)
        return y.permute(0, 4, 1, 2, 3)


class CausalConv3d(nn.Module):
    """Conv3d that pads time only on the past side: with the first frame repeated, or with cached frames."""

    def __init__(self, c_in: int, c_out: int, kernel: tuple[int, int, int] = (3, 3, 3), stride: int = 1):
        super().__init__()
        kt, kh, kw = kernel
        self.past = kt - 1
        self.stride = stride
        self.conv = nn.Conv3d(c_in, c_out, kernel, stride=(stride, 1, 1), padding=(0, kh // 2, kw // 2))

    def forward(self, x: torch.Tensor, state: CausalState | None = None) -> torch.Tensor:
        if self.past == 0:
            return self.conv(x)
        cached = state.get(self) if state is not None else None
        if cached is None:
            cached = x[:, :, :1].expand(-1, -1, self.past, -1, -1)
        x = torch.cat([cached, x], dim=2)  # (B, C, past + T, H, W)
        if state is not None:
            if self.stride != 1:
                raise RuntimeError("chunked causal state is only defined for stride-1 convolutions")
            state[self] = x[:, :, -self.past :].clone()
        return self.conv(x)


class ResBlock(nn.Module):
    """Pre-norm residual block of two causal 3x3x3 convolutions."""

    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.norm1 = RMSNorm(c_in)
        self.conv1 = CausalConv3d(c_in, c_out)
        self.norm2 = RMSNorm(c_out)
        self.conv2 = CausalConv3d(c_out, c_out)
        self.skip = nn.Conv3d(c_in, c_out, 1) if c_in != c_out else nn.Identity()
        nn.init.zeros_(self.conv2.conv.weight)  # each block starts as the identity
        nn.init.zeros_(self.conv2.conv.bias)

    def forward(self, x: torch.Tensor, state: CausalState | None = None) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)), state)
        h = self.conv2(F.silu(self.norm2(h)), state)
        return self.skip(x) + h


class Downsample(nn.Module):
    """Halve space (strided 3x3 conv per frame), then time (causal stride-2 conv: frame 0 stays alone).

    With `shortcut`, the input folded 2x2x2 into channels and averaged down to c_out is added: the
    convolutions learn a residual on top of a box-filter downsampler.
    """

    def __init__(self, c_in: int, c_out: int, shortcut: bool = False):
        super().__init__()
        self.space = nn.Conv3d(c_in, c_out, (1, 3, 3), stride=(1, 2, 2), padding=(0, 1, 1))
        self.time = CausalConv3d(c_out, c_out, (3, 1, 1), stride=2)
        self.shortcut = shortcut
        if shortcut:  # start as the box filter; the convolutions learn what it misses
            _zero(self.time.conv)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.time(self.space(x))  # (B, C, 1+2k, H, W) -> (B, C', 1+k, H/2, W/2)
        if self.shortcut:
            out = out + average_channels(fold_space_time(x), out.shape[1])
        return out


class Upsample(nn.Module):
    """Double time (channels to frames; frame 0 yields one frame), then space (nearest + 3x3 conv).

    With `shortcut`, the input's channels repeated and unfolded 2x2x2 into space and time are added.
    """

    def __init__(self, c_in: int, c_out: int, shortcut: bool = False):
        super().__init__()
        self.time = CausalConv3d(c_in, 2 * c_in, (3, 1, 1))
        self.space = nn.Conv3d(c_in, c_out, (1, 3, 3), padding=(0, 1, 1))
        self.shortcut = shortcut
        self.c_out = c_out
        if shortcut:
            _zero(self.space)

    def forward(self, x: torch.Tensor, state: CausalState | None = None) -> torch.Tensor:
        b, c, t, h, w = x.shape
        first_chunk = state is None or self not in state
        pairs = self.time(x, state).view(b, 2, c, t, h, w)
        y = pairs.permute(0, 2, 3, 1, 4, 5).reshape(b, c, 2 * t, h, w)  # frame i -> frames 2i, 2i+1
        if first_chunk:
            y = y[:, :, 1:]  # latent frame 0 is one frame: 1+k -> 1+2k
        if state is not None:
            state[self] = x.new_ones(())
        y = F.interpolate(y, scale_factor=(1.0, 2.0, 2.0), mode="nearest")
        out = self.space(y)  # (B, C', T', 2H, 2W)
        if self.shortcut:
            skip = unfold_space_time(repeat_channels(x, 8 * self.c_out))
            out = out + (skip[:, :, 1:] if first_chunk else skip)
        return out


def _zero(conv: nn.Conv3d) -> None:
    nn.init.zeros_(conv.weight)
    nn.init.zeros_(conv.bias)


def match_channels(x: torch.Tensor, c_out: int) -> torch.Tensor:
    """(B, C, ...) -> (B, c_out, ...): the first c_out channels, padded with zero channels if C < c_out."""
    if x.shape[1] >= c_out:
        return x[:, :c_out]
    return F.pad(x, (0, 0) * (x.ndim - 2) + (0, c_out - x.shape[1]))


def fold_space_time(x: torch.Tensor) -> torch.Tensor:
    """(B, C, 1+2k, H, W) -> (B, 8C, 1+k, H/2, W/2): 2x2 pixels and 2 frames into channels, causally.

    Output frame 0 holds input frame 0 twice; output frame i holds input frames 2i-1 and 2i.
    """
    x = torch.cat([x[:, :, :1], x], dim=2)  # 2+2k frames: pairs (0, 0), (1, 2), (3, 4), ...
    b, c, t, h, w = x.shape
    x = x.reshape(b, c, t // 2, 2, h // 2, 2, w // 2, 2).permute(0, 1, 3, 5, 7, 2, 4, 6)
    return x.reshape(b, 8 * c, t // 2, h // 2, w // 2)


def unfold_space_time(x: torch.Tensor) -> torch.Tensor:
    """(B, 8C, t, h, w) -> (B, C, 2t, 2h, 2w): the inverse layout of `fold_space_time` (frame 0 kept twice)."""
    b, c8, t, h, w = x.shape
    c = c8 // 8
    x = x.reshape(b, c, 2, 2, 2, t, h, w).permute(0, 1, 5, 2, 6, 3, 7, 4)
    return x.reshape(b, c, 2 * t, 2 * h, 2 * w)


def average_channels(x: torch.Tensor, c_out: int) -> torch.Tensor:
    """(B, C, ...) -> (B, c_out, ...): the mean of each group of C / c_out consecutive channels."""
    b, c = x.shape[:2]
    if c % c_out:
        raise ConfigError(f"vae shortcut: {c} channels cannot be averaged into {c_out}")
    return x.reshape(b, c_out, c // c_out, *x.shape[2:]).mean(2)


def repeat_channels(x: torch.Tensor, c_out: int) -> torch.Tensor:
    """(B, C, ...) -> (B, c_out, ...): each channel repeated c_out / C times in a row."""
    c = x.shape[1]
    if c_out % c:
        raise ConfigError(f"vae shortcut: {c} channels cannot be repeated into {c_out}")
    return x.repeat_interleave(c_out // c, dim=1)


class Encoder(nn.Module):
    """Video (B, 3, 1+4k, H, W) -> mean and log-variance (B, 2*latent, 1+k, H/8, W/8)."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult]
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.in_channels * cfg.patch_size**2, widths[0])
        self.levels = nn.ModuleList()
        self.downs = nn.ModuleList()
        for i, width in enumerate(widths):
            self.levels.append(nn.ModuleList(ResBlock(width, width) for _ in range(cfg.encoder_blocks[i])))
            if i + 1 < len(widths):
                self.downs.append(Downsample(width, widths[i + 1], cfg.shortcuts))
        self.norm_out = RMSNorm(widths[-1])
        self.conv_out = CausalConv3d(widths[-1], 2 * cfg.latent_channels)
        self.shortcut = cfg.shortcuts
        self.latent_channels = cfg.latent_channels
        self.width = widths[0]
        if cfg.shortcuts:
            # At initialisation the encoder is exactly a box filter (when base_channels >= 3 p^2): the stem
            # pads the unshuffled pixels with zero channels, every level folds and averages, and the
            # log-variance starts small.
            _zero(self.conv_in.conv)
            _zero(self.conv_out.conv)
            nn.init.constant_(self.conv_out.conv.bias[cfg.latent_channels :], -8.0)

    def forward(self, video: torch.Tensor) -> torch.Tensor:
        x = pixel_unshuffle_3d(video, self.patch)  # (B, 3p^2, T, H/p, W/p)
        x = self.conv_in(x) + match_channels(x, self.width) if self.shortcut else self.conv_in(x)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                x = block(x)
            if i < len(self.downs):
                x = self.downs[i](x)
        moments = self.conv_out(F.silu(self.norm_out(x)))
        if self.shortcut:  # the mean gets the channel-averaged features; the log-variance does not
            mean, logvar = moments.chunk(2, dim=1)
            moments = torch.cat([mean + average_channels(x, self.latent_channels), logvar], dim=1)
        return moments


class Decoder(nn.Module):
    """Latent (B, latent, t, h, w) -> video (B, 3, 1+4(t-1), 8h, 8w); resumable across chunks via state."""

    def __init__(self, cfg: VAEConfig):
        super().__init__()
        widths = [cfg.base_channels * m for m in cfg.channel_mult][::-1]
        blocks = list(cfg.decoder_blocks)[::-1]
        self.patch = cfg.patch_size
        self.conv_in = CausalConv3d(cfg.latent_channels, widths[0])
        self.levels = nn.ModuleList()
        self.ups = nn.ModuleList()
        for i, width in enumerate(widths):
            self.levels.append(nn.ModuleList(ResBlock(width, width) for _ in range(blocks[i])))
            if i + 1 < len(widths):
                self.ups.append(Upsample(width, widths[i + 1], cfg.shortcuts))
        self.norm_out = RMSNorm(widths[-1])
        self.conv_out = CausalConv3d(widths[-1], cfg.in_channels * cfg.patch_size**2)
        self.shortcut = cfg.shortcuts
        self.width = widths[0]
        self.out_channels = cfg.in_channels * cfg.patch_size**2
        if cfg.shortcuts:  # at initialisation, the decoder is exactly nearest-neighbour upsampling
            _zero(self.conv_in.conv)
            _zero(self.conv_out.conv)

    def forward(self, z: torch.Tensor, state: CausalState | None = None) -> torch.Tensor:
        x = self.conv_in(z, state)
        if self.shortcut:
            x = x + repeat_channels(z, self.width)
        for i, blocks in enumerate(self.levels):
            for block in blocks:
                x = block(x, state)
            if i < len(self.ups):
                x = self.ups[i](x, state)
        out = self.conv_out(F.silu(self.norm_out(x)), state)
        if self.shortcut:
            out = out + match_channels(x, self.out_channels)
        return pixel_shuffle_3d(out, self.patch)  # (B, 3, T, H, W)


def pixel_unshuffle_3d(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C, T, H, W) -> (B, C*p*p, T, H/p, W/p), each frame on its own."""
    b, c, t, h, w = x.shape
    x = x.view(b, c, t, h // p, p, w // p, p).permute(0, 1, 4, 6, 2, 3, 5)
    return x.reshape(b, c * p * p, t, h // p, w // p)


def pixel_shuffle_3d(x: torch.Tensor, p: int) -> torch.Tensor:
    """(B, C*p*p, T, H, W) -> (B, C, T, H*p, W*p): inverse of pixel_unshuffle_3d."""
    b, cpp, t, h, w = x.shape
    c = cpp // (p * p)
    x = x.reshape(b, c, p, p, t, h, w).permute(0, 1, 4, 5, 2, 6, 3)
    return x.reshape(b, c, t, h * p, w * p)


@dataclass
class DiagonalGaussian:
    """The encoder's posterior: per-element mean and log-variance (B, C, t, h, w)."""

    mean: torch.Tensor
    logvar: torch.Tensor

    def sample(self, generator: torch.Generator | None = None) -> torch.Tensor:
        """Draw z = mean + std * noise."""
        noise = torch.randn(self.mean.shape, generator=generator, device=self.mean.device, dtype=self.mean.dtype)
        return self.mean + torch.exp(0.5 * self.logvar) * noise

    def kl(self) -> torch.Tensor:
        """KL to a unit Gaussian, averaged over every latent element."""
        return 0.5 * (self.mean.pow(2) + self.logvar.exp() - 1.0 - self.logvar).mean()


class VideoAutoencoder(nn.Module):
    """Causal video autoencoder; `encode_latent`/`decode_latent` speak the normalised latent the DiT sees."""

    def __init__(self, cfg: VAEConfig | None = None):
        super().__init__()
        self.cfg = cfg = cfg or VAEConfig()
        levels = len(cfg.channel_mult)
        if len(cfg.encoder_blocks) != levels or len(cfg.decoder_blocks) != levels:
            raise ConfigError(
                f"vae: encoder_blocks {cfg.encoder_blocks} and decoder_blocks {cfg.decoder_blocks} "
                f"need one entry per channel_mult level ({levels})"
            )
        if cfg.temporal_downsample != 2 ** (levels - 1):
            raise ConfigError(
                f"vae: temporal_downsample {cfg.temporal_downsample} must be 2^(levels-1) = "
                f"{2 ** (levels - 1)} for channel_mult {cfg.channel_mult}"
            )
        if cfg.spatial_downsample != cfg.patch_size * 2 ** (levels - 1):
            raise ConfigError(
                f"vae: spatial_downsample {cfg.spatial_downsample} must be patch_size x 2^(levels-1) = "
                f"{cfg.patch_size * 2 ** (levels - 1)}"
            )
        self.encoder = Encoder(cfg)
        self.decoder = Decoder(cfg)

    # ---- shapes -------------------------------------------------------------------------------------
    def latent_shape(self, num_frames: int, height: int, width: int) -> tuple[int, int, int, int]:
        """(C, t, h, w) of the latent of a (3, num_frames, height, width) video; validates the size."""
        cfg = self.cfg
        step = cfg.temporal_downsample
        multiple = 2 * cfg.spatial_downsample  # the transformer then cuts 2x2 latent patches
        if num_frames < 1 or (num_frames - 1) % step:
            near = 1 + step * max(0, round((num_frames - 1) / step))
            raise InputError(
                f"a video of {num_frames} frames cannot be encoded: frame counts must be 1+{step}k "
                f"(1, {1 + step}, {1 + 2 * step}, 17, ...); try {near} frames"
            )
        if height % multiple or width % multiple or height <= 0 or width <= 0:
            raise InputError(
                f"a {width}x{height} video cannot be encoded: width and height must be positive multiples "
                f"of {multiple}; try {max(multiple, width // multiple * multiple)}x"
                f"{max(multiple, height // multiple * multiple)} (crop or resize first)"
            )
        return (
            cfg.latent_channels,
            1 + (num_frames - 1) // step,
            height // cfg.spatial_downsample,
            width // cfg.spatial_downsample,
        )

    def _check_video(self, video: torch.Tensor) -> None:
        if video.ndim != 5 or video.shape[1] != self.cfg.in_channels:
            raise InputError(
                f"expected a video tensor (B, {self.cfg.in_channels}, T, H, W), got shape {tuple(video.shape)}"
            )
        self.latent_shape(video.shape[2], video.shape[3], video.shape[4])

    def _check_latent(self, z: torch.Tensor) -> None:
        if z.ndim != 5 or z.shape[1] != self.cfg.latent_channels:
            raise InputError(
                f"expected a latent tensor (B, {self.cfg.latent_channels}, t, h, w), got shape {tuple(z.shape)}"
            )

    # ---- encode -------------------------------------------------------------------------------------
    def encode(self, video: torch.Tensor) -> DiagonalGaussian:
        """Video (B, 3, 1+4k, H, W) in [-1, 1] -> posterior over raw latents (B, C, 1+k, H/8, W/8)."""
        self._check_video(video)
        moments = self.encoder(video)
        mean, logvar = moments.float().chunk(2, dim=1)
        return DiagonalGaussian(mean, logvar.clamp(-30.0, 20.0))

    def normalise(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent -> the unit-scale latent the transformer sees."""
        return (z - self.cfg.latent_shift) * self.cfg.latent_scale

    def denormalise(self, z: torch.Tensor) -> torch.Tensor:
        """Normalised latent -> raw latent for `decode`."""
        return z / self.cfg.latent_scale + self.cfg.latent_shift

    def encode_latent(
        self, video: torch.Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """Video (B, 3, 1+4k, H, W) in [-1, 1] -> normalised latent (B, C, 1+k, H/8, W/8)."""
        posterior = self.encode(video)
        z = posterior.sample(generator) if sample else posterior.mean
        return self.normalise(z)

    # ---- decode -------------------------------------------------------------------------------------
    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """Raw latent (B, C, t, h, w) -> video (B, 3, 1+4(t-1), 8h, 8w), all at once (the training path)."""
        self._check_latent(z)
        return self.decoder(z)

    def iter_decode(
        self,
        z: torch.Tensor,
        chunk_frames: int | None = 4,
        tile_latent: int | None = None,
        overlap_latent: int | None = None,
    ) -> Iterator[torch.Tensor]:
        """Yield video chunks (B, 3, frames, H, W) decoding `chunk_frames` raw latent frames at a time.

        Memory is set by the chunk, not the duration: stream long videos to a file from here.
        tile_latent: decode in overlapping spatial tiles of this many latents, blended at the seams.
        overlap_latent: latents shared by neighbouring tiles (default: a quarter of the tile).
        """
        self._check_latent(z)
        if overlap_latent is None:
            overlap_latent = (tile_latent or 0) // 4
        if chunk_frames is not None and chunk_frames < 1:
            raise InputError(f"chunk_frames must be at least 1 latent frame (or None), got {chunk_frames}")
        t = z.shape[2]
        chunk = t if chunk_frames is None else chunk_frames
        tiles = _tiles(z.shape[3], z.shape[4], tile_latent, overlap_latent)
        states: list[CausalState] = [{} for _ in tiles]
        scale = self.cfg.spatial_downsample
        # Frame 0 alone, then equal chunks: the peak is one chunk of 4*chunk frames, whatever the duration.
        starts = [0, *range(1, t, chunk)] if chunk < t else [0]
        for start, end in zip(starts, [*starts[1:], t], strict=True):
            z_chunk = z[:, :, start:end]
            if len(tiles) == 1:
                yield self.decoder(z_chunk, states[0]).float()
                continue
            out: torch.Tensor | None = None
            weight_sum: torch.Tensor | None = None
            for (top, left, h, w), state in zip(tiles, states, strict=True):
                piece = self.decoder(z_chunk[:, :, :, top : top + h, left : left + w], state).float()
                if out is None:
                    b, c, frames = piece.shape[:3]
                    out = piece.new_zeros(b, c, frames, z.shape[3] * scale, z.shape[4] * scale)
                    weight_sum = piece.new_zeros(z.shape[3] * scale, z.shape[4] * scale)
                weight = _tile_weight(top, left, h, w, z.shape[3], z.shape[4], overlap_latent, scale)
                rows, cols = slice(top * scale, (top + h) * scale), slice(left * scale, (left + w) * scale)
                out[..., rows, cols] += piece * weight
                weight_sum[rows, cols] += weight
            yield out / weight_sum

    def decode_latent(
        self,
        z: torch.Tensor,
        chunk_frames: int | None = 4,
        tile_latent: int | None = 32,
    ) -> torch.Tensor:
        """Normalised latent (B, C, t, h, w) -> video (B, 3, 1+4(t-1), 8h, 8w) in [-1, 1].

        chunk_frames: latent frames per decode step (None: all at once); the result is the same.
        tile_latent: latents beyond this (256 px by default) are decoded in blended spatial tiles.
        """
        z = self.denormalise(z)
        b, _, t, h, w = z.shape
        scale = self.cfg.spatial_downsample
        tiles_needed = tile_latent is not None and max(h, w) > tile_latent
        video = z.new_empty(b, self.cfg.in_channels, 1 + self.cfg.temporal_downsample * (t - 1), h * scale, w * scale)
        done = 0
        for piece in self.iter_decode(z, chunk_frames, tile_latent if tiles_needed else None):
            video[:, :, done : done + piece.shape[2]] = piece
            done += piece.shape[2]
        return video.clamp_(-1.0, 1.0)

    def decode_tiled(
        self, z: torch.Tensor, tile_latent: int = 32, overlap_latent: int | None = None, chunk_frames: int | None = 4
    ) -> torch.Tensor:
        """Normalised latent -> video like `decode_latent`, always in overlapping spatial tiles."""
        z = self.denormalise(z)
        pieces = list(self.iter_decode(z, chunk_frames, tile_latent, overlap_latent))
        return torch.cat(pieces, dim=2).clamp_(-1.0, 1.0)

    def forward(
        self, video: torch.Tensor, sample: bool = True, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, DiagonalGaussian]:
        """Reconstruct a video for training: returns (reconstruction, posterior)."""
        posterior = self.encode(video)
        z = posterior.sample(generator) if sample else posterior.mean
        return self.decoder(z.to(video.dtype)), posterior

    def num_params(self) -> int:
        """Total parameter count."""
        return sum(p.numel() for p in self.parameters())


def _tiles(h: int, w: int, tile: int | None, overlap: int) -> list[tuple[int, int, int, int]]:
    """(top, left, height, width) latent tiles covering h x w with the given overlap."""
    if tile is None or (h <= tile and w <= tile):
        return [(0, 0, h, w)]
    if overlap >= tile:
        raise InputError(f"tile overlap ({overlap} latents) must be smaller than the tile ({tile} latents)")

    def starts(size: int) -> list[int]:
        if size <= tile:
            return [0]
        stride = tile - overlap
        count = math.ceil((size - tile) / stride) + 1
        return sorted({min(i * stride, size - tile) for i in range(count)})

    th, tw = min(tile, h), min(tile, w)
    return [(top, left, th, tw) for top in starts(h) for left in starts(w)]


def _tile_weight(
    top: int, left: int, h: int, w: int, full_h: int, full_w: int, overlap: int, scale: int
) -> torch.Tensor:
    """Pixel weights of one tile: linear ramps across overlaps with neighbours, flat at image borders."""
    def ramp(start: int, size: int, full: int) -> torch.Tensor:
        n = size * scale
        ramp_px = max(1, overlap * scale)
        weight = torch.ones(n)
        edge = torch.arange(1, ramp_px + 1, dtype=torch.float32) / (ramp_px + 1)
        if start > 0:
            weight[:ramp_px] = torch.minimum(weight[:ramp_px], edge)
        if start + size < full:
            weight[-ramp_px:] = torch.minimum(weight[-ramp_px:], edge.flip(0))
        return weight

    return ramp(top, h, full_h)[:, None] * ramp(left, w, full_w)[None, :]


@torch.no_grad()
def fit_latent_stats(model: VideoAutoencoder, videos: Iterable[torch.Tensor]) -> tuple[float, float]:
    """Latent (shift, scale) making `(z - shift) * scale` zero-mean, unit-std over `videos` (B, 3, T, H, W)."""
    count, total, total_sq = 0, 0.0, 0.0
    for video in videos:
        z = model.encode(video).mean.double()
        count += z.numel()
        total += z.sum().item()
        total_sq += z.pow(2).sum().item()
    if count == 0:
        raise InputError("fit_latent_stats needs at least one video")
    mean = total / count
    std = math.sqrt(max(total_sq / count - mean**2, 1e-12))
    return mean, 1.0 / std
