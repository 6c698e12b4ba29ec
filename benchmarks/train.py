"""Training throughput of the transformer at three sizes: samples/s and achieved GFLOP/s against the
machine's matmul peak measured in the same run (MFU on a GPU).

    python -m benchmarks.train [--quick]
"""

from __future__ import annotations

import argparse

import torch

from benchmarks.common import machine, matmul_peak, print_table, timeit
from kinema.config import DiTConfig
from kinema.models.dit import DiffusionTransformer

SIZES = {"S (6x256)": (6, 256, 4), "M (8x384)": (8, 384, 6), "L (12x512)": (12, 512, 8)}


def step_flops(model: DiffusionTransformer, tokens: int, text_tokens: int, batch: int) -> float:
    """Forward + backward FLOPs of one step: 3x the forward's per-token matmuls and attention.

    Only weights applied to every video token count; modulation and the time/text MLPs run once per
    sample, and text keys/values once per text token.
    """
    cfg = model.cfg
    per_token = ("patch_embed", "attn.qkv", "attn.proj", "cross_attn.q.", "cross_attn.proj", "mlp.", "final.linear")
    linear = sum(p.numel() for n, p in model.named_parameters() if p.ndim == 2 and any(k in n for k in per_token))
    text_kv = sum(p.numel() for n, p in model.named_parameters() if "cross_attn.kv" in n)
    attention = 4 * cfg.depth * cfg.width * (tokens * tokens + tokens * text_tokens)
    return 3 * batch * (2 * linear * tokens + 2 * text_kv * text_tokens + attention)


def measure(depth: int, width: int, heads: int, batch: int, latent: tuple[int, int, int], bf16: bool, device: str):
    """Seconds per training step and FLOPs per step for one model size."""
    torch.manual_seed(0)
    model = DiffusionTransformer(DiTConfig(depth=depth, width=width, heads=heads)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    t, h, w = latent
    x = torch.randn(batch, model.cfg.latent_channels, t, h, w, device=device)
    text = torch.randn(batch, 32, model.cfg.text_dim, device=device)
    mask = torch.ones(batch, 32, dtype=torch.bool, device=device)
    known = torch.zeros(batch, 1, t, h, w, device=device)
    times = torch.rand(batch, device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = model(x, times, text, mask, x * known, known).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = timeit(step, repeat=3)
    tokens = t * (h // 2) * (w // 2)
    return seconds, step_flops(model, tokens, 32, batch), model.num_params()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smallest size only, smaller batch")
    parser.add_argument("--batch", type=int, default=8)
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    bf16 = True
    peak = matmul_peak(torch.bfloat16 if bf16 else torch.float32, device=device)
    rows = []
    sizes = list(SIZES.items())[:1] if args.quick else SIZES.items()
    for name, (depth, width, heads) in sizes:
        batch = 2 if args.quick else args.batch
        seconds, flops, params = measure(depth, width, heads, batch, (5, 16, 16), bf16, device)
        achieved = flops / seconds / 1e9
        rows.append({"model": name, "params": f"{params / 1e6:.1f} M", "tokens": 320, "batch": batch,
                     "samples/s": f"{batch / seconds:.2f}", "GFLOP/s": f"{achieved:.0f}",
                     "vs matmul peak": f"{achieved / peak:.2f}"})
    print_table(f"transformer training, bf16 autocast, {machine()}; matmul peak {peak:.0f} GFLOP/s", rows)


if __name__ == "__main__":
    main()
