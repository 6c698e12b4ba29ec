"""`kinema train CONFIG.toml` and `kinema cache CONFIG.toml`: thin over kinema.train."""

from __future__ import annotations

from kinema.config import RunConfig, from_dict, load_toml


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help="train the autoencoder or the transformer from a TOML config",
        description="Train a stage ([train] stage = \"vae\" or \"dit\") from CONFIG.toml. Runs on one process, "
        "or on many with `torchrun --nproc-per-node N -m kinema train CONFIG.toml` (DDP; parallel = \"fsdp\" shards).",
    )
    p.add_argument("config", help="TOML file with [model], [data] and [train] tables (see configs/)")
    p.add_argument("--resume", action="store_true", help="continue exactly from the last checkpoint in out_dir")
    p.add_argument("--steps", type=int, help="override train.steps")
    p.add_argument("--out", help="override train.out_dir")
    p.add_argument("--init-from", help="override train.init_from")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(handler=run_train)

    p = subparsers.add_parser("cache", help="encode a dataset into latents once, for repeated training",
                              description="Encode the config's data with its init_from autoencoder into DIR; "
                              "then train with [data] source = \"cache\", path = DIR.")
    p.add_argument("config")
    p.add_argument("--out", required=True, help="folder for latents-*.safetensors and captions.jsonl")
    p.add_argument("--count", type=int, default=1000, help="samples to encode (default 1000)")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--source", choices=("world", "folder"), help="override data.source (a training config "
                   "that reads the cache names source = \"cache\"; encode from the world or a folder instead)")
    p.add_argument("--workers", type=int, help="override data.num_workers")
    p.set_defaults(handler=run_cache)


def _load(args) -> RunConfig:
    run = from_dict(RunConfig, load_toml(args.config), "config")
    if getattr(args, "steps", None):
        run.train.steps = args.steps
    if getattr(args, "out", None) and args.handler is run_train:
        run.train.out_dir = args.out
    if getattr(args, "init_from", None):
        run.train.init_from = args.init_from
    if getattr(args, "source", None):
        run.data.source = args.source
    if getattr(args, "workers", None) is not None:
        run.data.num_workers = args.workers
    return run


def run_train(args) -> int:
    from kinema.train.trainer import train

    folder = train(_load(args), resume=args.resume, show_progress=not args.quiet)
    print(f"checkpoint: {folder}")
    return 0


def run_cache(args) -> int:
    from kinema.train.cache import build_cache

    out = build_cache(_load(args), args.out, args.count, args.batch_size)
    print(f"cache: {out}")
    return 0
