"""kinema's transformer against diffusers' WanTransformer3DModel configured to the same shape.

Both models are randomly initialised (nothing is downloaded), fp32 on the CPU (or GPU if present), batch 2,
32 text tokens. For each token count it times one denoising forward and one training step
(forward + backward + AdamW), alternating kinema and Wan runs so that load on a shared machine hits
both alike, and prints medians and the ratio kinema / Wan (below 1: kinema is faster). It also prints
the achieved GFLOP/s of kinema's training steps (1024 tokens in the summary line) against the matmul peak measured in the
same run, and with --profile the top operators of one training step of each model. With --cpu-time every
figure is this process's CPU seconds instead of wall seconds: on a machine busy with other work it counts
what each run did rather than how long it waited for a core.

With --compile it also times torch.compile'd copies of both models (kc and wc in the table): against eager
Wan, which is how diffusers runs by default, and against compiled Wan, the fair comparison.

    python -m benchmarks.peer [--quick] [--tokens 256 1024 4096] [--cpu-time] [--profile] [--compile]
"""

from __future__ import annotations

import argparse
import copy
import math
import time
from collections.abc import Callable

import torch
from diffusers import WanTransformer3DModel

from benchmarks.common import machine, matmul_peak, print_table, timeit
from kinema.config import DiTConfig
from kinema.models.dit import DiffusionTransformer

BATCH = 2
TEXT_TOKENS = 32
# Latent (frames, height, width) -> tokens after 1x2x2 patching, and how many alternating rounds to time.
GRIDS = {256: ((4, 16, 16), 5), 1024: ((4, 32, 32), 3), 4096: ((16, 32, 32), 1)}


def wan_like(cfg: DiTConfig) -> WanTransformer3DModel:
    """A Wan transformer with kinema's depth, width, heads, patch, channels, text width and FFN width."""
    return WanTransformer3DModel(
        patch_size=cfg.patch_size,
        num_attention_heads=cfg.heads,
        attention_head_dim=cfg.width // cfg.heads,
        in_channels=2 * cfg.latent_channels + 1,  # noisy latent, known latent, known mask, as kinema
        out_channels=cfg.latent_channels,
        text_dim=cfg.text_dim,
        freq_dim=256,
        ffn_dim=int(cfg.width * cfg.mlp_ratio),
        num_layers=cfg.depth,
        cross_attn_norm=True,  # kinema's norm2 before cross-attention is an affine LayerNorm too
        eps=1e-6,
    )


def param_groups(model: torch.nn.Module) -> dict[str, int]:
    """Parameters on the token path (patch embed, attention, MLP, output) and in time/text conditioning."""
    conditioning = ("time_embed", "text_proj", "pooled_embed", "modulation", "condition_embedder", "scale_shift_table")
    groups = {"total": 0, "token path": 0, "conditioning": 0}
    for name, p in model.named_parameters():
        groups["total"] += p.numel()
        groups["conditioning" if any(c in name for c in conditioning) else "token path"] += p.numel()
    return groups


def train_step_flops(cfg: DiTConfig, tokens: int, text_tokens: int, batch: int) -> float:
    """Matmul FLOPs of one training step (3x forward): per-token linears and attention, not conditioning.

    Per-sample conditioning (timestep MLP, adaLN modulation) costs one vector per sample, not per token,
    so it is left out; counting it per token (as every 2-D weight times tokens does) overstates FLOPs.
    """
    D, F, L, N = cfg.width, int(cfg.width * cfg.mlp_ratio), text_tokens, tokens
    patch_in = (2 * cfg.latent_channels + 1) * math.prod(cfg.patch_size)
    patch_out = cfg.latent_channels * math.prod(cfg.patch_size)
    per_block = (
        2 * N * (4 * D * D + 2 * D * D + 2 * D * F)  # qkv + proj, cross q + proj, MLP
        + 2 * L * 2 * D * D  # cross-attention keys and values of the text tokens
        + 4 * N * N * D  # self-attention scores and weighted sum
        + 4 * N * L * D  # cross-attention scores and weighted sum
    )
    text = 2 * L * (cfg.text_dim * D + D * D)
    forward = 2 * N * (patch_in + patch_out) * D + cfg.depth * per_block + text
    return 3 * batch * forward


class Runner:
    """One model's forward and training step on fixed inputs of one latent shape."""

    def __init__(self, model: torch.nn.Module, kind: str, cfg: DiTConfig, latent: tuple[int, int, int], device: str):
        g = torch.Generator().manual_seed(0)
        T, H, W = latent
        C = cfg.latent_channels
        self.model, self.kind = model, kind
        self.x = torch.randn(BATCH, C, T, H, W, generator=g).to(device)
        self.known = torch.randn(BATCH, C, T, H, W, generator=g).to(device)
        self.known_mask = torch.zeros(BATCH, 1, T, 1, 1, device=device)
        self.known_mask[:, :, :1] = 1.0  # first latent frame known, as in image-to-video
        self.target = torch.randn(BATCH, C, T, H, W, generator=g).to(device)
        self.t = torch.rand(BATCH, generator=g).to(device)
        self.text = torch.randn(BATCH, TEXT_TOKENS, cfg.text_dim, generator=g).to(device)
        self.text_mask = torch.ones(BATCH, TEXT_TOKENS, dtype=torch.bool, device=device)
        self.opt = torch.optim.AdamW(model.parameters(), lr=1e-4)

    def __call__(self) -> torch.Tensor:
        if self.kind == "kinema":
            return self.model(self.x, self.t, self.text, self.text_mask, self.known, self.known_mask)
        # Wan takes the three inputs concatenated along channels and times in [0, 1000].
        mask = self.known_mask.expand_as(self.x[:, :1])
        inputs = torch.cat([self.x, self.known * mask, mask], dim=1)
        return self.model(inputs, self.t * 1000.0, self.text, return_dict=False)[0]

    def forward(self) -> None:
        with torch.no_grad():
            self()

    def train_step(self) -> None:
        loss = (self() - self.target).square().mean()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()


def alternate(
    fns: dict[str, Callable[[], None]], rounds: int, clock: Callable[[], float] = time.perf_counter
) -> dict[str, float]:
    """Median seconds of each function, run one after another `rounds` times after one warm-up each."""
    for fn in fns.values():
        fn()
    times: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(rounds):
        for name, fn in fns.items():
            times[name].append(timeit(fn, repeat=1, warmup=0, clock=clock))
    return {name: sorted(ts)[len(ts) // 2] for name, ts in times.items()}


def profile(runners: dict[str, Runner], top: int = 12) -> None:
    """Self time of the top operators in one training step of each model, forward and backward together."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    for name, runner in runners.items():
        runner.train_step()
        with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
            runner.train_step()
        events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
        total = sum(e.self_cpu_time_total for e in events)
        rows = [{"op": e.key[:60], "calls": e.count, "self ms": f"{e.self_cpu_time_total / 1e3:.0f}",
                 "share": f"{e.self_cpu_time_total / total:.1%}"} for e in events[:top]]
        print_table(f"{name}: one training step, top operators by self time ({total / 1e6:.2f} s in all)", rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="skip 4096 tokens")
    parser.add_argument("--tokens", type=int, nargs="+", choices=sorted(GRIDS), help="token counts to run")
    parser.add_argument("--cpu-time", action="store_true", help="time in process CPU seconds instead of wall seconds")
    parser.add_argument("--profile", action="store_true", help="profile one training step at the largest token count")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile'd copies of both models (compiling takes minutes on CPU)")
    args = parser.parse_args()
    clock = time.process_time if args.cpu_time else time.perf_counter
    device = "cuda" if torch.cuda.is_available() else "cpu"
    cfg = DiTConfig()
    torch.manual_seed(0)
    models = {"kinema": DiffusionTransformer(cfg).to(device), "wan": wan_like(cfg).to(device)}
    if args.compile:
        # Same weights, compiled in place; each token count compiles once, in the warm-up run.
        for name in ("kinema", "wan"):
            models[f"{name} compiled"] = copy.deepcopy(models[name])
            models[f"{name} compiled"].compile(dynamic=False)

    params = {name: param_groups(m) for name, m in models.items()}
    print_table(
        f"parameters, depth {cfg.depth}, width {cfg.width}, heads {cfg.heads}, FFN {int(cfg.width * cfg.mlp_ratio)}",
        [{"group": g, "kinema": f"{params['kinema'][g]:,}", "wan": f"{params['wan'][g]:,}",
          "kinema / wan": f"{params['kinema'][g] / params['wan'][g]:.3f}"} for g in params["kinema"]],
    )

    peaks = [matmul_peak(torch.float32, device=device, clock=clock)]
    token_counts = args.tokens or [n for n in GRIDS if not (args.quick and n > 1024)]
    rows, achieved, compiled_achieved, runners, wan_steps = [], {}, {}, {}, {}
    started = time.perf_counter()
    for tokens in token_counts:
        latent, rounds = GRIDS[tokens]
        runners = {name: Runner(m, name.split()[0], cfg, latent, device) for name, m in models.items()}
        fwd = alternate({name: r.forward for name, r in runners.items()}, rounds, clock)
        step = alternate({name: r.train_step for name, r in runners.items()}, rounds, clock)
        rows.append({"tokens": tokens, "latent TxHxW": "x".join(map(str, latent)), "rounds": rounds,
                     "fwd kinema s": f"{fwd['kinema']:.3f}", "fwd wan s": f"{fwd['wan']:.3f}",
                     "fwd ratio": f"{fwd['kinema'] / fwd['wan']:.2f}",
                     "train kinema s": f"{step['kinema']:.3f}", "train wan s": f"{step['wan']:.3f}",
                     "train ratio": f"{step['kinema'] / step['wan']:.2f}"})
        achieved[tokens] = train_step_flops(cfg, tokens, TEXT_TOKENS, BATCH) / step["kinema"] / 1e9
        rows[-1]["kinema train GFLOP/s"] = f"{achieved[tokens]:.1f}"
        if args.compile:
            kc, wc = "kinema compiled", "wan compiled"
            rows[-1].update({
                "fwd kc s": f"{fwd[kc]:.3f}", "fwd wc s": f"{fwd[wc]:.3f}",
                "fwd kc / wan": f"{fwd[kc] / fwd['wan']:.2f}", "fwd kc / wc": f"{fwd[kc] / fwd[wc]:.2f}",
                "train kc s": f"{step[kc]:.3f}", "train wc s": f"{step[wc]:.3f}",
                "train kc / wan": f"{step[kc] / step['wan']:.2f}", "train kc / wc": f"{step[kc] / step[wc]:.2f}"})
            compiled_achieved[tokens] = train_step_flops(cfg, tokens, TEXT_TOKENS, BATCH) / step[kc] / 1e9
            rows[-1]["kc train GFLOP/s"] = f"{compiled_achieved[tokens]:.1f}"
        wan_steps[tokens] = step["wan"]
        print(rows[-1], flush=True)
    peaks.append(matmul_peak(torch.float32, device=device, clock=clock))
    peak = max(peaks)
    for row, tokens in zip(rows, token_counts, strict=True):
        # The step's matmul FLOPs at the machine's matmul peak: no implementation of the same maths in
        # fp32 can beat this, so a ratio near 0.8 here means the 0.8 target leaves nothing but matmuls.
        floor = train_step_flops(cfg, tokens, TEXT_TOKENS, BATCH) / (peak * 1e9)
        row["matmul floor / wan train"] = f"{floor / wan_steps[tokens]:.2f}"
    print_table(f"fp32, batch {BATCH}, {TEXT_TOKENS} text tokens, medians of {'CPU' if args.cpu_time else 'wall'} "
                f"seconds, {machine()} "
                f"({time.perf_counter() - started:.0f} s); ratio kinema / wan, target <= 0.8", rows)
    tokens = 1024 if 1024 in achieved else max(achieved)
    print(f"\nkinema training step at {tokens} tokens: {achieved[tokens]:.1f} GFLOP/s (matmul FLOPs of the token "
          f"path), {achieved[tokens] / peak:.0%} of the fp32 matmul peak {peak:.0f} GFLOP/s "
          f"(measured {', '.join(f'{p:.0f}' for p in peaks)}); target >= 60% at 1024 tokens", flush=True)
    if compiled_achieved:
        print(f"compiled: {compiled_achieved[tokens]:.1f} GFLOP/s, {compiled_achieved[tokens] / peak:.0%} of the peak "
              f"(kc, wc: the compiled kinema and Wan)", flush=True)
    if args.profile:
        profile(runners)


if __name__ == "__main__":
    main()
