"""`kinema train CONFIG.toml` and `kinema cache CONFIG.toml`: thin over kinema.train."""

from __future__ import annotations

from kinema.config import RunConfig, from_dict, load_toml
from kinema.errors import InputError


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the autoencoder or the transformer from a TOML config",
        description="Train a stage ([train] stage = \"vae\" or \"dit\") from CONFIG.toml. Runs on one process, "
        "or on many with `torchrun --nproc-per-node N -m kinema train CONFIG.toml` (DDP; parallel = \"fsdp\" shards).",
    )
    p.add_argument("config", help="TOML file with [model], [data] and [train] tables (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the last checkpoint in out_dir")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--decay-steps", type=int, help="override train.decay_steps: fall linearly to "
                   "min_lr_ratio·lr over the last N steps before --steps (with --resume, cools down a constant run)")
    p.add_argument("--max-minutes", type=float, help="override train.max_minutes (wall-time budget of this run; "
                   "with --resume, of the continuation)")
    p.add_argument("--out", help="override train.out_dir")
    p.add_argument("--init-from", help="override train.init_from")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_train)

    p = subparsers.add_parser("cache", help="encode a dataset into latents once, for repeated training",
                              description="Encode the config's data with its init_from autoencoder into DIR; "
                              "then train with [data] source = \"cache\", path = DIR.")
    p.add_argument("config", help="TOML config: its [data] is encoded with the autoencoder of its train.init_from")
    p.add_argument("--out", required=True, help="folder for latents-*.safetensors and captions.jsonl")
    p.add_argument("--count", type=int, default=1000, help="samples to encode (default 1000)")
    p.add_argument("--start", type=int, default=0, help="first sample to encode (default 0); a folder that "
                   "holds N samples is extended with --start N (an interrupted cache keeps its whole shards)")
    p.add_argument("--batch-size", type=int, default=8, help="clips encoded at once (default 8)")
    p.add_argument("--source", choices=("world", "folder"), help="override data.source (a training config "
                   "that reads the cache names source = \"cache\"; encode from the world or a folder instead)")
    p.add_argument("--workers", type=int, help="override data.num_workers")
    p.set_defaults(handler=run_cache)

    p = subparsers.add_parser(
        "export", help="assemble a shippable checkpoint from training runs",
        description="Copy a transformer run's latest checkpoint to OUT (default bf16). --vae takes the "
        "autoencoder from another run instead, e.g. a decoder-only fine-tune (train.freeze_encoder); its "
        "encoder and latent scale must equal the transformer's, since the transformer learned those latents.",
    )
    p.add_argument("run", help="transformer checkpoint or run folder (its latest checkpoint)")
    p.add_argument("--out", required=True, help="checkpoint folder to write (replaced atomically)")
    p.add_argument("--vae", help="checkpoint or run folder whose autoencoder weights to ship")
    p.add_argument("--dtype", choices=("bf16", "fp16", "fp32"), default="bf16",
                   help="precision of the shipped weights (default bf16, half the size of fp32)")
    p.add_argument("--card", help="markdown file to ship as card.md (default: the run's card)")
    p.set_defaults(handler=run_export)


def _load(args) -> RunConfig:
    run = from_dict(RunConfig, load_toml(args.config), "config")
    if getattr(args, "steps", None) is not None:
        if args.steps < 1:
            raise InputError(f"--steps {args.steps}: choose at least 1")
        run.train.steps = args.steps
    if getattr(args, "decay_steps", None) is not None:
        if args.decay_steps < 0:
            raise InputError(f"--decay-steps must be 0 or more, got {args.decay_steps}")
        run.train.decay_steps = args.decay_steps
    if getattr(args, "max_minutes", None) is not None:
        if not args.max_minutes > 0:
            raise InputError(f"--max-minutes {args.max_minutes}: choose a budget above 0")
        run.train.max_minutes = args.max_minutes
    if getattr(args, "out", None) and args.handler is run_train:
        run.train.out_dir = args.out
    if getattr(args, "init_from", None):
        run.train.init_from = args.init_from
    if getattr(args, "source", None):
        run.data.source = args.source
    if getattr(args, "workers", None) is not None:
        if args.workers < 0:
            raise InputError(f"--workers {args.workers}: choose 0 (load in the main process) or more")
        run.data.num_workers = args.workers
    return run


def run_train(args) -> int:
    from kinema.train.trainer import train

    folder = train(_load(args), resume=args.resume, show_progress=not args.quiet)
    print(f"checkpoint: {folder}")
    return 0


def run_cache(args) -> int:
    from kinema.train.cache import build_cache

    if args.count < 1 or args.start < 0 or args.batch_size < 1:
        raise InputError(f"--count {args.count}, --start {args.start}, --batch-size {args.batch_size}: "
                         "encode at least 1 sample, from sample 0 or later, in batches of at least 1")
    out = build_cache(_load(args), args.out, args.count, args.batch_size, start=args.start)
    print(f"cache: {out}")
    return 0


def run_export(args) -> int:
    from pathlib import Path

    import torch

    from kinema.checkpoint import load_config, load_state, resolve, save_checkpoint
    from kinema.errors import CheckpointError

    source = resolve(args.run)
    cfg = load_config(source)
    vae_state = load_state(source, "vae")
    if args.vae:
        other = resolve(args.vae)
        if load_config(other).vae != cfg.vae:
            raise CheckpointError(f"{other}: its autoencoder config differs from {source}'s; the transformer "
                                  "would see different latents (fine-tune the decoder with train.freeze_encoder)")
        other_state = load_state(other, "vae")
        changed = [k for k, v in vae_state.items() if k.startswith("encoder.") and not torch.equal(v, other_state[k])]
        if changed:
            raise CheckpointError(f"{other}: its encoder differs from {source}'s ({len(changed)} tensors, e.g. "
                                  f"{changed[0]}); only a decoder-only fine-tune can replace the autoencoder")
        vae_state = other_state
    card_path = Path(args.card) if args.card else source / "card.md"
    card = card_path.read_text() if card_path.is_file() else None
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}[args.dtype]
    folder = save_checkpoint(args.out, cfg, load_state(source, "dit"), vae_state, card=card, dtype=dtype)
    size = sum(f.stat().st_size for f in folder.iterdir()) / 2**20
    print(f"checkpoint: {folder} ({size:.1f} MiB, {args.dtype})")
    return 0
