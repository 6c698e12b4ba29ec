"""Where kinema's transformer and diffusers' WanTransformer3DModel (Wan 2.1) compute the same thing.

Each test copies weights from a kinema part into the Wan part it corresponds to and checks the outputs agree.
What is asserted equal:

- sinusoidal timestep features (kinema at t in [0, 1] = Wan's `Timesteps(flip_sin_to_cos, shift 0)` at 1000 t),
  and the timestep MLP (Linear, SiLU, Linear) after them;
- the text projection (Linear, GELU-tanh, Linear; Wan's `PixArtAlphaTextProjection`);
- patch embedding: kinema's patchify + Linear = Wan's Conv3d with kernel = stride = patch size;
- 3-D RoPE: the same frequencies and the same split of rotation pairs among time, height and width; only the
  channel layout differs, (j, j + d/2) in kinema against (2j, 2j + 1) in Wan, so permuting the q and k
  projection rows maps one onto the other and attention scores are unchanged;
- the feed-forward network (Linear, GELU-tanh, Linear; Wan's `FeedForward("gelu-approximate")`);
- a whole block at one attention head: self-attention with q/k RMS norm and RoPE, cross-attention, MLP,
  LayerNorms and gates, with the shared modulation (projection once, a table per block) as Wan has it.

How they differ (not asserted equal):

| part | kinema | Wan |
| --- | --- | --- |
| q/k RMS norm | per head (weight of head size, shared by heads) | across all heads (weight of width); equal only at one head |
| RoPE layout | rotate-half pairs (j, j + d/2) | interleaved pairs (2j, 2j + 1); a channel permutation |
| block modulation | one shared SiLU + Linear(width, 6 width) plus a learned table per block (`shared_modulation`, default) | the same: equal maths |
| modulation init | projection and tables zero (each block starts as identity) | table random / sqrt(width); projection not zeroed |
| conditioning vector | timestep MLP + pooled text MLP | timestep MLP only |
| final layer | LayerNorm modulated by SiLU + Linear of the conditioning | LayerNorm modulated by a (2, width) table + the timestep embedding itself |
| cross-attention mask | padding text tokens masked; a sample with no text gets no cross-attention | no mask: every text token (zero padded) is attended |
| projections | fused qkv and kv linears | separate to_q, to_k, to_v |
| output layout | patch values ordered (channel, pt, ph, pw) | ordered (pt, ph, pw, channel): a row permutation of the output linear |
| conditioning inputs | noisy latent, known latent, known mask as 2C + 1 channels in the model | the caller concatenates channels (Wan I2V/VACE pass extra inputs differently) |
| norm precision | LayerNorm in the input dtype | FP32LayerNorm: norms and residual adds upcast to fp32 (same in fp32) |
| parameters at equal shape | within 5% of Wan's (the pooled-text MLP is kinema's own) | |
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

diffusers = pytest.importorskip("diffusers")
from diffusers.models.attention import FeedForward  # noqa: E402
from diffusers.models.embeddings import PixArtAlphaTextProjection, TimestepEmbedding, Timesteps  # noqa: E402
from diffusers.models.transformers.transformer_wan import (  # noqa: E402
    WanAttention,
    WanAttnProcessor,
    WanRotaryPosEmbed,
    WanTransformerBlock,
)

from kinema.config import DiTConfig  # noqa: E402
from kinema.models.dit import (  # noqa: E402
    MLP,
    DiffusionTransformer,
    DiTBlock,
    SelfAttention,
    rope_cos_sin,
    rope_positions,
    timestep_features,
)

WIDTH = 48
TOL = {"rtol": 1e-5, "atol": 1e-5}


def copy_linear(dst: nn.Linear, weight: torch.Tensor, bias: torch.Tensor) -> None:
    with torch.no_grad():
        dst.weight.copy_(weight)
        dst.bias.copy_(bias)


def rope_permutation(head_dim: int) -> torch.Tensor:
    """Wan channel c holds kinema channel perm[c]: pair j is (j, j + d/2) in kinema, (2j, 2j + 1) in Wan."""
    half = head_dim // 2
    return torch.stack([torch.arange(half), torch.arange(half) + half], dim=-1).flatten()


def test_timestep_features_and_mlp_match_wan_timestep_embedding():
    torch.manual_seed(0)
    t = torch.rand(5)
    wan_features = Timesteps(256, flip_sin_to_cos=True, downscale_freq_shift=0)(t * 1000.0)
    torch.testing.assert_close(timestep_features(t), wan_features, **TOL)

    kinema = DiffusionTransformer(DiTConfig(depth=1, width=WIDTH, heads=1, text_dim=16, latent_channels=4))
    wan = TimestepEmbedding(256, WIDTH)
    copy_linear(wan.linear_1, kinema.time_embed[0].weight, kinema.time_embed[0].bias)
    copy_linear(wan.linear_2, kinema.time_embed[2].weight, kinema.time_embed[2].bias)
    torch.testing.assert_close(kinema.time_embed(timestep_features(t)), wan(wan_features), **TOL)


def test_text_projection_matches_pixart_projection():
    kinema = DiffusionTransformer(DiTConfig(depth=1, width=WIDTH, heads=1, text_dim=16, latent_channels=4))
    wan = PixArtAlphaTextProjection(16, WIDTH, act_fn="gelu_tanh")
    copy_linear(wan.linear_1, kinema.text_proj[0].weight, kinema.text_proj[0].bias)
    copy_linear(wan.linear_2, kinema.text_proj[2].weight, kinema.text_proj[2].bias)
    text = torch.randn(2, 7, 16)
    torch.testing.assert_close(kinema.text_proj(text), wan(text), **TOL)


def test_patch_embedding_linear_equals_conv3d_with_stride_kernel():
    cfg = DiTConfig(depth=1, width=WIDTH, heads=1, text_dim=16, latent_channels=4)
    kinema = DiffusionTransformer(cfg)
    in_channels = 2 * cfg.latent_channels + 1
    conv = nn.Conv3d(in_channels, WIDTH, kernel_size=cfg.patch_size, stride=cfg.patch_size)
    with torch.no_grad():
        conv.weight.copy_(kinema.patch_embed.weight.view(WIDTH, in_channels, *cfg.patch_size))
        conv.bias.copy_(kinema.patch_embed.bias)
    x = torch.randn(2, in_channels, 3, 4, 6)
    wan_tokens = conv(x).flatten(2).transpose(1, 2)  # (B, D, T', H', W') -> (B, N, D), as in Wan's forward
    torch.testing.assert_close(kinema.patch_embed(kinema.patchify(x)), wan_tokens, **TOL)


def test_rope_tables_are_wans_up_to_a_channel_permutation():
    head_dim, grid = 48, (3, 4, 5)
    wan_cos, wan_sin = WanRotaryPosEmbed(head_dim, (1, 2, 2), max_seq_len=64)(torch.zeros(1, 1, 3, 8, 10))
    cos, sin = rope_cos_sin(rope_positions(grid), head_dim)
    perm = rope_permutation(head_dim)
    torch.testing.assert_close(cos[:, perm], wan_cos[0, :, 0], **TOL)
    torch.testing.assert_close(sin[:, perm], wan_sin[0, :, 0], **TOL)


def test_feed_forward_matches_wan_gelu_tanh_ffn():
    kinema = MLP(WIDTH, 4 * WIDTH)
    wan = FeedForward(WIDTH, inner_dim=4 * WIDTH, activation_fn="gelu-approximate")
    copy_linear(wan.net[0].proj, kinema.fc1.weight, kinema.fc1.bias)
    copy_linear(wan.net[2], kinema.fc2.weight, kinema.fc2.bias)
    x = torch.randn(2, 10, WIDTH)
    torch.testing.assert_close(kinema(x), wan(x), **TOL)


def copy_self_attention(kinema: SelfAttention, wan: WanAttention, perm: torch.Tensor) -> None:
    """kinema's fused qkv into Wan's q, k, v, with q and k rows in Wan's interleaved RoPE layout."""
    q_w, k_w, v_w = kinema.qkv.weight.chunk(3)
    q_b, k_b, v_b = kinema.qkv.bias.chunk(3)
    copy_linear(wan.to_q, q_w[perm], q_b[perm])
    copy_linear(wan.to_k, k_w[perm], k_b[perm])
    copy_linear(wan.to_v, v_w, v_b)
    copy_linear(wan.to_out[0], kinema.proj.weight, kinema.proj.bias)
    with torch.no_grad():
        # kinema's per-head norm weight is shared by the heads; Wan's covers the whole width.
        wan.norm_q.weight.copy_(kinema.q_norm.weight.repeat(kinema.heads)[perm])
        wan.norm_k.weight.copy_(kinema.k_norm.weight.repeat(kinema.heads)[perm])


def test_self_attention_matches_at_one_head_and_differs_in_qk_norm_at_more():
    grid = (2, 3, 4)
    x = torch.randn(2, 24, WIDTH)
    wan_rope = WanRotaryPosEmbed(WIDTH, (1, 2, 2), max_seq_len=64)(torch.zeros(1, 1, 2, 6, 8))
    cos, sin = rope_cos_sin(rope_positions(grid), WIDTH)
    outputs = {}
    for heads in (1, 2):
        torch.manual_seed(0)
        kinema = SelfAttention(WIDTH, heads, qk_norm=True)
        with torch.no_grad():
            kinema.q_norm.weight.uniform_(0.5, 1.5)
            kinema.k_norm.weight.uniform_(0.5, 1.5)
        wan = WanAttention(WIDTH, heads=heads, dim_head=WIDTH // heads, eps=1e-6, processor=WanAttnProcessor())
        if heads == 1:
            copy_self_attention(kinema, wan, rope_permutation(WIDTH))
            head_cos, head_sin = cos, sin
        else:
            # RoPE per head as well; Wan's rotary tables are built for the head size, so test without RoPE.
            copy_self_attention(kinema, wan, torch.arange(WIDTH))
            head_cos, head_sin = torch.ones(24, WIDTH // heads), torch.zeros(24, WIDTH // heads)
        outputs[heads] = kinema(x, head_cos, head_sin), wan(x, rotary_emb=wan_rope if heads == 1 else None)
    torch.testing.assert_close(*outputs[1], **TOL)
    # Per-head against whole-width RMS statistics: the only difference left at two heads.
    assert not torch.allclose(*outputs[2], atol=1e-3)


def test_block_matches_wan_block_at_one_head_with_shared_modulation():
    """Wan's modulation, table_i + W silu(temb) + b, is kinema's shared projection plus the block's table."""
    torch.manual_seed(0)
    cfg = DiTConfig(depth=1, width=WIDTH, heads=1, mlp_ratio=2.0, text_dim=16, latent_channels=4)
    kinema = DiTBlock(cfg)
    wan = WanTransformerBlock(WIDTH, 2 * WIDTH, num_heads=1, cross_attn_norm=True, eps=1e-6)
    time_proj = nn.Linear(WIDTH, 6 * WIDTH)  # Wan's condition_embedder.time_proj, shared by all blocks
    perm = rope_permutation(WIDTH)
    with torch.no_grad():
        kinema.modulation_table.copy_(wan.scale_shift_table.flatten())
        kinema.norm2.weight.uniform_(0.5, 1.5)
        kinema.norm2.bias.normal_(0, 0.1)
        wan.norm2.weight.copy_(kinema.norm2.weight)
        wan.norm2.bias.copy_(kinema.norm2.bias)
    copy_self_attention(kinema.attn, wan.attn1, perm)
    cross, wan_cross = kinema.cross_attn, wan.attn2
    k_w, v_w = cross.kv.weight.chunk(2)
    k_b, v_b = cross.kv.bias.chunk(2)
    copy_linear(wan_cross.to_q, cross.q.weight, cross.q.bias)
    copy_linear(wan_cross.to_k, k_w, k_b)
    copy_linear(wan_cross.to_v, v_w, v_b)
    copy_linear(wan_cross.to_out[0], cross.proj.weight, cross.proj.bias)
    with torch.no_grad():
        wan_cross.norm_q.weight.copy_(cross.q_norm.weight)
        wan_cross.norm_k.weight.copy_(cross.k_norm.weight)
    copy_linear(wan.ffn.net[0].proj, kinema.mlp.fc1.weight, kinema.mlp.fc1.bias)
    copy_linear(wan.ffn.net[2], kinema.mlp.fc2.weight, kinema.mlp.fc2.bias)

    grid, L = (2, 3, 4), 5
    x, temb, context = torch.randn(2, 24, WIDTH), torch.randn(2, WIDTH), torch.randn(2, L, WIDTH)
    cos, sin = rope_cos_sin(rope_positions(grid), WIDTH)
    context_mask = torch.ones(2, 1, 1, L, dtype=torch.bool)
    shared = time_proj(nn.functional.silu(temb))  # what DiffusionTransformer computes once for all blocks
    ours = kinema(x, shared, context, context_mask, torch.ones(2, 1, 1), cos, sin)
    wan_rope = WanRotaryPosEmbed(WIDTH, (1, 2, 2), max_seq_len=64)(torch.zeros(1, 1, 2, 6, 8))
    timestep_proj = time_proj(nn.functional.silu(temb)).unflatten(1, (6, WIDTH))
    theirs = wan(x, context, timestep_proj, wan_rope)
    torch.testing.assert_close(ours, theirs, **TOL)
