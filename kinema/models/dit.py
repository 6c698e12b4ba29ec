"""The spacetime diffusion transformer: patchify, 3-D RoPE, self-attention, cross-attention to text, adaLN."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from kinema.config import DiTConfig
from kinema.errors import ConfigError, InputError


def rope_positions(
    grid: tuple[int, int, int], device: torch.device | str = "cpu", offset: tuple[float, float, float] = (0, 0, 0)
) -> torch.Tensor:
    """(time, row, column) of every token of a T x H x W patch grid, in token order; (N, 3) float."""
    axes = [torch.arange(n, device=device, dtype=torch.float32) + o for n, o in zip(grid, offset, strict=True)]
    t, h, w = torch.meshgrid(*axes, indexing="ij")
    return torch.stack([t.flatten(), h.flatten(), w.flatten()], dim=-1)


def rope_cos_sin(positions: torch.Tensor, head_dim: int, theta: float = 10000.0) -> tuple[torch.Tensor, torch.Tensor]:
    """Rotary tables for (N, 3) positions: the head's rotation pairs split among time, height and width."""
    pairs = head_dim // 2
    spatial_pairs = pairs // 3
    split = (pairs - 2 * spatial_pairs, spatial_pairs, spatial_pairs)  # time gets the remainder
    angles = []
    for axis, n in enumerate(split):
        freqs = theta ** (-torch.arange(n, device=positions.device, dtype=torch.float32) / n)
        angles.append(positions[:, axis : axis + 1] * freqs)  # (N, n)
    angle = torch.cat(angles, dim=-1)  # (N, head_dim / 2)
    angle = torch.cat([angle, angle], dim=-1)  # (N, head_dim): pair j is (j, j + head_dim / 2)
    return angle.cos(), angle.sin()


def signed_sin(sin: torch.Tensor) -> torch.Tensor:
    """The sine table with its first half negated: rotate-half, cat(-second, first), is then a roll by
    half the head times this table."""
    half = sin.shape[-1] // 2
    return torch.cat([-sin[..., :half], sin[..., half:]], dim=-1)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate (B, heads, N, head_dim) queries or keys by the tables from `rope_cos_sin`."""
    return torch.addcmul(x * cos.to(x.dtype), x.roll(x.shape[-1] // 2, dims=-1), signed_sin(sin).to(x.dtype))


def modulate(x: torch.Tensor, shift: torch.Tensor, scale: torch.Tensor) -> torch.Tensor:
    """adaLN: scale and shift normalised tokens (B, N, D) by per-sample (B, 1, D) vectors (one fused pass)."""
    return torch.addcmul(shift, x, 1 + scale)


def timestep_features(t: torch.Tensor, dim: int = 256, max_period: float = 10000.0) -> torch.Tensor:
    """Sinusoidal features of flow times t in [0, 1], (B,) -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([args.cos(), args.sin()], dim=-1)


class RMSNorm(nn.RMSNorm):
    """RMS norm that runs in the input's dtype, so bf16 autocast keeps the fused kernel."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.rms_norm(x, self.normalized_shape, self.weight.to(x.dtype), self.eps)


class SelfAttention(nn.Module):
    """Multi-head self-attention over all spacetime tokens with RMS-normed q, k and 3-D RoPE."""

    def __init__(self, width: int, heads: int, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(width, 3 * width)
        self.q_norm = RMSNorm(width // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(width // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        head_dim, half = D // self.heads, D // self.heads // 2
        qkv = self.qkv(x).view(B, N, 3, self.heads, head_dim)
        qk, v = qkv.split([2, 1], dim=2)  # split, not slicing: backward is one cat, not zero-filled copies
        # Queries and keys are normalised and rotated together, and the norms' weights are folded into
        # the rotary tables: rope(n * w) = n * (w cos) + roll(n) * (roll(w) signed sin). Four passes over
        # q and k instead of twelve, with the same result as norm, then RoPE, on each.
        cos_table, sin_table = cos[:, None, None, :], signed_sin(sin)[:, None, None, :]  # (N, 1, 1, head_dim)
        if isinstance(self.q_norm, RMSNorm):
            qk = F.rms_norm(qk, (head_dim,), eps=self.q_norm.eps)
            weight = torch.stack([self.q_norm.weight, self.k_norm.weight])[:, None, :]  # (2, 1, head_dim)
            cos_table, sin_table = cos_table * weight, sin_table * weight.roll(half, dims=-1)
        qk = torch.addcmul(qk * cos_table.to(qk.dtype), qk.roll(half, dims=-1), sin_table.to(qk.dtype))
        q, k = (part.transpose(1, 2) for part in qk.unbind(2))  # (B, heads, N, head_dim)
        out = F.scaled_dot_product_attention(q, k, v.squeeze(2).transpose(1, 2))
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class CrossAttention(nn.Module):
    """Attention from video tokens to text tokens; padding tokens are masked out."""

    def __init__(self, width: int, heads: int, qk_norm: bool):
        super().__init__()
        self.heads = heads
        self.q = nn.Linear(width, width)
        self.kv = nn.Linear(width, 2 * width)
        self.q_norm = RMSNorm(width // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(width // heads, eps=1e-6) if qk_norm else nn.Identity()
        self.proj = nn.Linear(width, width)

    def forward(self, x: torch.Tensor, context: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        B, N, D = x.shape
        L = context.shape[1]
        head_dim = D // self.heads
        q = self.q(x).view(B, N, self.heads, head_dim).transpose(1, 2)
        k, v = self.kv(context).view(B, L, 2, self.heads, head_dim).permute(2, 0, 3, 1, 4).unbind(0)
        q, k = self.q_norm(q).to(v.dtype), self.k_norm(k).to(v.dtype)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=context_mask)  # mask (B, 1, 1, L)
        return self.proj(out.transpose(1, 2).reshape(B, N, D))


class MLP(nn.Module):
    """Two-layer feed-forward network with tanh-approximated GELU."""

    def __init__(self, width: int, hidden: int):
        super().__init__()
        self.fc1 = nn.Linear(width, hidden)
        self.fc2 = nn.Linear(hidden, width)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


class DiTBlock(nn.Module):
    """adaLN-zero self-attention, then cross-attention to text, then a modulated MLP."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        width = cfg.width
        self.norm1 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.attn = SelfAttention(width, cfg.heads, cfg.qk_norm)
        self.norm2 = nn.LayerNorm(width, eps=1e-6)
        self.cross_attn = CrossAttention(width, cfg.heads, cfg.qk_norm)
        self.norm3 = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.mlp = MLP(width, int(width * cfg.mlp_ratio))
        if cfg.shared_modulation:
            # Wan-style: one projection of the conditioning for all blocks, plus this block's own table.
            self.modulation_table = nn.Parameter(torch.zeros(6 * width))
        else:
            self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 6 * width))

    def forward(
        self,
        x: torch.Tensor,  # (B, N, D)
        c: torch.Tensor,  # (B, D), or (B, 6 D) already projected when the modulation is shared
        context: torch.Tensor,  # (B, L, D)
        context_mask: torch.Tensor,  # (B, 1, 1, L) bool
        has_text: torch.Tensor,  # (B, 1, 1): 0 where a sample has no text token at all
        cos: torch.Tensor,
        sin: torch.Tensor,
    ) -> torch.Tensor:
        mod = c + self.modulation_table.to(c.dtype) if hasattr(self, "modulation_table") else self.modulation(c)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mod[:, None].chunk(6, dim=-1)
        # Gated residuals as one fused multiply-add each.
        x = torch.addcmul(x, gate_msa, self.attn(modulate(self.norm1(x), shift_msa, scale_msa), cos, sin))
        x = torch.addcmul(x, has_text, self.cross_attn(self.norm2(x), context, context_mask))
        return torch.addcmul(x, gate_mlp, self.mlp(modulate(self.norm3(x), shift_mlp, scale_mlp)))


class FinalLayer(nn.Module):
    """adaLN-modulated norm and a linear map from tokens back to patch values."""

    def __init__(self, width: int, patch_values: int):
        super().__init__()
        self.norm = nn.LayerNorm(width, elementwise_affine=False, eps=1e-6)
        self.modulation = nn.Sequential(nn.SiLU(), nn.Linear(width, 2 * width))
        self.linear = nn.Linear(width, patch_values)

    def forward(self, x: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
        shift, scale = self.modulation(c)[:, None].chunk(2, dim=-1)
        return self.linear(modulate(self.norm(x), shift, scale))


def frame_coordinates(batch: int, frames: int, height: int, width: int, like: torch.Tensor,
                      time: bool = False) -> torch.Tensor:
    """(B, 2, T, H, W): each latent pixel's x and y across the frame, from -1 (left, top) to 1; with `time`
    (B, 3, T, H, W), the third channel the frame's place in the window, from -1 (first) to 1 (last)."""
    ys = torch.linspace(-1.0, 1.0, height, device=like.device, dtype=like.dtype)
    xs = torch.linspace(-1.0, 1.0, width, device=like.device, dtype=like.dtype)
    grid = torch.stack([xs[None, :].expand(height, width), ys[:, None].expand(height, width)])  # (2, H, W)
    grid = grid[:, None].expand(2, frames, height, width)
    if time:
        ts = torch.linspace(-1.0, 1.0, frames, device=like.device, dtype=like.dtype)
        grid = torch.cat([grid, ts[None, :, None, None].expand(1, frames, height, width)])
    return grid[None].expand(batch, *grid.shape)


def layout_basis(frames: int, height: int, width: int, order: int, like: torch.Tensor) -> torch.Tensor:
    """(order ** 3, T, H, W): products of cosines cos(pi k u), k < order, over time, height and width, each
    axis running u = 0 to 1 across the window; the lowest spacetime frequencies of a latent."""

    def axis(n: int) -> torch.Tensor:  # (order, n)
        u = torch.linspace(0.0, 1.0, n, device=like.device, dtype=torch.float32)
        return torch.cos(math.pi * torch.arange(order, device=like.device, dtype=torch.float32)[:, None] * u)

    basis = torch.einsum("at,bh,cw->abcthw", axis(frames), axis(height), axis(width))
    return basis.reshape(order**3, frames, height, width).to(like.dtype)


class DiffusionTransformer(nn.Module):
    """Predicts the flow velocity of a noisy video latent given time, text and known frames."""

    def __init__(self, cfg: DiTConfig):
        super().__init__()
        if cfg.width % cfg.heads:
            raise ConfigError(f"dit.width {cfg.width} must be divisible by dit.heads {cfg.heads}")
        head_dim = cfg.width // cfg.heads
        if head_dim % 2 or head_dim < 6:
            raise ConfigError(f"dit head size width/heads = {head_dim} must be even and at least 6 for 3-D RoPE")
        self.cfg = cfg
        self.gradient_checkpointing = cfg.gradient_checkpointing
        pt, ph, pw = cfg.patch_size
        patch_volume = pt * ph * pw
        in_channels = 2 * cfg.latent_channels + 1  # noisy latent, known latent, known mask
        if cfg.time_channel and not cfg.position_channels:
            raise ConfigError("dit.time_channel needs dit.position_channels = true")
        if cfg.position_channels:
            in_channels += 3 if cfg.time_channel else 2  # x, y in the frame (and the frame's place in time)
        self.patch_embed = nn.Linear(in_channels * patch_volume, cfg.width)
        self.time_embed = nn.Sequential(nn.Linear(256, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
        self.text_proj = nn.Sequential(
            nn.Linear(cfg.text_dim, cfg.width), nn.GELU(approximate="tanh"), nn.Linear(cfg.width, cfg.width)
        )
        self.pooled_embed = (
            nn.Sequential(nn.Linear(cfg.text_dim, cfg.width), nn.SiLU(), nn.Linear(cfg.width, cfg.width))
            if cfg.pooled_text
            else None
        )
        self.layout = (
            nn.Linear(cfg.text_dim, cfg.layout_prior**3 * cfg.latent_channels) if cfg.layout_prior else None
        )
        self.blocks = nn.ModuleList(DiTBlock(cfg) for _ in range(cfg.depth))
        self.shared_modulation = (
            nn.Sequential(nn.SiLU(), nn.Linear(cfg.width, 6 * cfg.width)) if cfg.shared_modulation else None
        )
        self.final = FinalLayer(cfg.width, patch_volume * cfg.latent_channels)
        self.initialize_weights()

    def initialize_weights(self) -> None:
        """Xavier linears, small conditioning MLPs, and zero adaLN modulation and output (adaLN-zero)."""
        for module in self.modules():
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.zeros_(module.bias)
        for mlp in (self.time_embed, self.text_proj, self.pooled_embed):
            if mlp is not None:
                for layer in mlp:
                    if isinstance(layer, nn.Linear):
                        nn.init.normal_(layer.weight, std=0.02)
        projections = [block.modulation[-1] for block in self.blocks if hasattr(block, "modulation")]
        if self.shared_modulation is not None:
            projections.append(self.shared_modulation[-1])
        if self.layout is not None:  # the layout prior starts silent, like every output of adaLN-zero
            projections.append(self.layout)
        for layer in projections:
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)
        for layer in (self.final.modulation[-1], self.final.linear):
            nn.init.zeros_(layer.weight)
            nn.init.zeros_(layer.bias)

    def num_params(self, trainable_only: bool = False) -> int:
        """Number of parameters (all, or only those that require grad)."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def enable_gradient_checkpointing(self, enabled: bool = True) -> None:
        """Recompute block activations in backward: less memory, ~30% more compute."""
        self.gradient_checkpointing = enabled

    def _check_shapes(self, x: torch.Tensor, text_states: torch.Tensor, text_mask: torch.Tensor) -> None:
        if x.ndim != 5 or x.shape[1] != self.cfg.latent_channels:
            raise InputError(
                f"latent must be (batch, {self.cfg.latent_channels}, frames, height, width), got {tuple(x.shape)}"
            )
        _, _, T, H, W = x.shape
        pt, ph, pw = self.cfg.patch_size
        if T % pt or H % ph or W % pw:
            raise InputError(
                f"latent size {T}x{H}x{W} (frames x height x width) is not divisible by the patch size "
                f"{pt}x{ph}x{pw}; with the 8x autoencoder, video height and width must be multiples of "
                f"{8 * ph} and {8 * pw}"
            )
        if text_states.ndim != 3 or text_states.shape[-1] != self.cfg.text_dim:
            raise InputError(f"text states must be (batch, tokens, {self.cfg.text_dim}), got {tuple(text_states.shape)}")
        if text_mask.shape != text_states.shape[:2]:
            raise InputError(f"text mask {tuple(text_mask.shape)} does not match text states {tuple(text_states.shape)}")

    def patchify(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, T, H, W) -> (B, N, C * pt * ph * pw) in (t, h, w) token order."""
        B, C, T, H, W = x.shape
        pt, ph, pw = self.cfg.patch_size
        x = x.reshape(B, C, T // pt, pt, H // ph, ph, W // pw, pw)
        x = x.permute(0, 2, 4, 6, 1, 3, 5, 7)  # (B, T', H', W', C, pt, ph, pw)
        return x.reshape(B, (T // pt) * (H // ph) * (W // pw), C * pt * ph * pw)

    def unpatchify(self, tokens: torch.Tensor, grid: tuple[int, int, int]) -> torch.Tensor:
        """(B, N, C * pt * ph * pw) -> (B, C, T, H, W)."""
        B = tokens.shape[0]
        pt, ph, pw = self.cfg.patch_size
        gt, gh, gw = grid
        C = self.cfg.latent_channels
        x = tokens.reshape(B, gt, gh, gw, C, pt, ph, pw).permute(0, 4, 1, 5, 2, 6, 3, 7)
        return x.reshape(B, C, gt * pt, gh * ph, gw * pw)

    def forward(
        self,
        x: torch.Tensor,  # (B, C, T, H, W) noisy latent
        t: torch.Tensor,  # (B,) or scalar flow time in [0, 1]; 1 is pure noise
        text_states: torch.Tensor,  # (B, L, text_dim)
        text_mask: torch.Tensor,  # (B, L) bool, True for real tokens
        known_latent: torch.Tensor | None = None,  # (B, C, T, H, W) clean latent of the known frames
        known_mask: torch.Tensor | None = None,  # (B, 1, T, H, W) or broadcastable, e.g. (B, 1, T, 1, 1)
    ) -> torch.Tensor:
        """Velocity (B, C, T, H, W) for the noisy latent `x` at times `t`."""
        self._check_shapes(x, text_states, text_mask)
        B, C, T, H, W = x.shape
        pt, ph, pw = self.cfg.patch_size
        grid = (T // pt, H // ph, W // pw)
        if known_mask is None:
            known_mask = x.new_zeros(B, 1, T, H, W)
        known_mask = known_mask.to(x.dtype).expand(B, 1, T, H, W)
        known = known_latent * known_mask if known_latent is not None else torch.zeros_like(x)
        inputs = [x, known, known_mask]
        if self.cfg.position_channels:
            inputs.append(frame_coordinates(B, T, H, W, x, time=self.cfg.time_channel))
        tokens = self.patch_embed(self.patchify(torch.cat(inputs, dim=1)))  # (B, N, D)

        t = torch.as_tensor(t, dtype=torch.float32, device=x.device).flatten()
        if t.numel() not in (1, B):
            raise InputError(f"expected one time per sample ({B}), got {t.numel()}")
        t = t.expand(B)
        c = self.time_embed(timestep_features(t))  # (B, D)
        text_mask = text_mask.to(torch.bool)
        has_text = text_mask.any(dim=1)  # (B,)
        weights = text_mask.to(text_states.dtype)[..., None]
        pooled = (text_states * weights).sum(1) / weights.sum(1).clamp_min(1.0)  # (B, text_dim)
        if self.pooled_embed is not None:
            c = c + self.pooled_embed(pooled)
        context = self.text_proj(text_states)  # (B, L, D)
        # A sample with no text token at all attends to everything and its cross-attention is then zeroed,
        # since SDPA returns NaN for a fully masked row.
        context_mask = (text_mask | ~has_text[:, None])[:, None, None, :]  # (B, 1, 1, L)
        has_text = has_text.to(tokens.dtype)[:, None, None]

        cos, sin = rope_cos_sin(rope_positions(grid, x.device), self.cfg.width // self.cfg.heads, self.cfg.rope_theta)
        block_c = self.shared_modulation(c) if self.shared_modulation is not None else c
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                tokens = checkpoint(block, tokens, block_c, context, context_mask, has_text, cos, sin, use_reentrant=False)
            else:
                tokens = block(tokens, block_c, context, context_mask, has_text, cos, sin)
        velocity = self.unpatchify(self.final(tokens, c), grid)
        if self.layout is not None:
            order = self.cfg.layout_prior
            coefficients = self.layout(pooled).view(B, C, order**3)
            prior = torch.einsum("bck,kthw->bcthw", coefficients, layout_basis(T, H, W, order, coefficients))
            # velocity = noise - x0: the prior joins the clean estimate, weighted towards pure noise
            velocity = velocity - t.to(prior.dtype).view(B, 1, 1, 1, 1) * prior
        return velocity.to(x.dtype)
