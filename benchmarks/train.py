"""Training throughput of the transformer at three sizes: tokens/s, achieved TFLOP/s, and their share of
the matmul peak measured in the same run; on a known GPU also MFU against its datasheet peak.

    python -m benchmarks.train [--quick] [--sizes cpu|gpu] [--tokens N] [--batch B] [--compile] [--fp32]

On a CPU the sizes are small (6x256 to 12x512 at 320 tokens); with a GPU they are DiT-B to DiT-XL widths
at 4,096 tokens per sample. A batch that does not fit is halved until it does (the table says so).
"""

from __future__ import annotations

import argparse
import gc
import math

import torch

from benchmarks.common import machine, matmul_peak, print_table, timeit
from kinema.config import DiTConfig
from kinema.models.dit import DiffusionTransformer

# name: (depth, width, heads); 64-wide heads throughout.
SIZES = {
    "cpu": {"S (6x256)": (6, 256, 4), "M (8x384)": (8, 384, 6), "L (12x512)": (12, 512, 8)},
    "gpu": {"B (12x768)": (12, 768, 12), "L (24x1024)": (24, 1024, 16), "XL (28x1152)": (28, 1152, 16)},
}
DEFAULTS = {"cpu": {"tokens": 320, "batch": 8}, "gpu": {"tokens": 4096, "batch": 8}}
# Dense (no sparsity) bf16 tensor-core peaks from the vendors' datasheets, TFLOP/s, by device-name fragment.
DATASHEET_BF16_TFLOPS = {"H200": 989.0, "H100 SXM": 989.0, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.0,
                         "A100": 312.0, "L40S": 362.0, "B200": 2250.0}


def datasheet_peak(name: str) -> float | None:
    """The datasheet bf16 peak (TFLOP/s) for a CUDA device name, or None for an unlisted device."""
    for fragment, tflops in DATASHEET_BF16_TFLOPS.items():
        if fragment in name:
            return tflops
    return None


def latent_for(tokens: int) -> tuple[int, int, int]:
    """A latent (frames, height, width) giving `tokens` 1x2x2 patches: 5 frames up to 320 tokens, else 16."""
    frames = 5 if tokens <= 320 else 16
    side = math.isqrt(tokens // frames)
    if frames * side * side != tokens:
        raise SystemExit(f"--tokens {tokens}: use frames x side^2 with 5 frames (e.g. 320) or 16 (e.g. 4096)")
    return frames, 2 * side, 2 * side


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


def measure(depth: int, width: int, heads: int, batch: int, latent: tuple[int, int, int], bf16: bool, device: str,
            compile_model: bool = False, repeat: int = 3):
    """Seconds per training step, FLOPs per step and parameters for one model size."""
    torch.manual_seed(0)
    model = DiffusionTransformer(DiTConfig(depth=depth, width=width, heads=heads)).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=device == "cuda")
    forward = torch.compile(model) if compile_model else model
    t, h, w = latent
    x = torch.randn(batch, model.cfg.latent_channels, t, h, w, device=device)
    text = torch.randn(batch, 32, model.cfg.text_dim, device=device)
    mask = torch.ones(batch, 32, dtype=torch.bool, device=device)
    known = torch.zeros(batch, 1, t, h, w, device=device)
    times = torch.rand(batch, device=device)

    def step():
        with torch.autocast(device, dtype=torch.bfloat16, enabled=bf16):
            loss = forward(x, times, text, mask, x * known, known).float().square().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    seconds = timeit(step, repeat=repeat, warmup=2 if compile_model else 1)
    tokens = t * (h // 2) * (w // 2)
    return seconds, step_flops(model, tokens, 32, batch), model.num_params()


def measure_fitting(depth, width, heads, batch, latent, bf16, device, compile_model):
    """`measure`, halving the batch after an out-of-memory error; returns the batch that ran too."""
    while True:
        try:
            return (*measure(depth, width, heads, batch, latent, bf16, device, compile_model), batch)
        except torch.OutOfMemoryError:
            if batch == 1:
                raise
        batch //= 2  # out here, the failed attempt's traceback (and the model it holds) is gone
        gc.collect()
        torch.cuda.empty_cache()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="smallest size only, batch 2")
    parser.add_argument("--sizes", choices=sorted(SIZES), help="model sizes (default: gpu with CUDA, else cpu)")
    parser.add_argument("--tokens", type=int, help="video tokens per sample (default: 320 on cpu sizes, 4096 on gpu)")
    parser.add_argument("--batch", type=int, help="samples per step (default: 8)")
    parser.add_argument("--compile", action="store_true", help="torch.compile the transformer first")
    parser.add_argument("--fp32", action="store_true", help="fp32 instead of bf16 autocast")
    args = parser.parse_args()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sizes = args.sizes or ("gpu" if device == "cuda" else "cpu")
    tokens = args.tokens or DEFAULTS[sizes]["tokens"]
    batch = 2 if args.quick else (args.batch or DEFAULTS[sizes]["batch"])
    bf16 = not args.fp32
    dtype = torch.bfloat16 if bf16 else torch.float32
    peak = matmul_peak(dtype, size=8192 if device == "cuda" else 1024, device=device) / 1e3  # TFLOP/s
    nominal = datasheet_peak(torch.cuda.get_device_name()) if device == "cuda" and bf16 else None
    latent = latent_for(tokens)
    rows = []
    chosen = list(SIZES[sizes].items())[:1] if args.quick else SIZES[sizes].items()
    for name, (depth, width, heads) in chosen:
        seconds, flops, params, ran = measure_fitting(depth, width, heads, batch, latent, bf16, device, args.compile)
        achieved = flops / seconds / 1e12
        row = {"model": name, "params": f"{params / 1e6:.1f} M", "tokens": tokens,
               "batch": ran if ran == batch else f"{ran} (of {batch}: memory)", "step s": f"{seconds:.3f}",
               "tokens/s": f"{ran * tokens / seconds:,.0f}", "TFLOP/s": f"{achieved:.3g}",
               "vs matmul peak": f"{achieved / peak:.2f}"}
        if nominal:
            row["MFU (datasheet)"] = f"{achieved / nominal:.2f}"
        rows.append(row)
        print(f"measured {row}", flush=True)  # kept if a later size runs past a time limit
        if device == "cuda":
            torch.cuda.empty_cache()
    precision = "bf16 autocast" if bf16 else "fp32"
    datasheet = f", datasheet {nominal:g}" if nominal else ""
    print_table(f"transformer training, {precision}{', compiled' if args.compile else ''}, {machine()}; "
                f"matmul peak {peak:.3g} TFLOP/s measured{datasheet}", rows)


if __name__ == "__main__":
    main()
