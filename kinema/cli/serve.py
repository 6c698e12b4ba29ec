"""`kinema serve`: the OpenAI-compatible Videos API and web page on uvicorn."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kinema.cli.generate import PRECISION_CHOICES, PRECISION_HELP
from kinema.cli.keys import open_store
from kinema.errors import InputError


def run_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from kinema.pipeline import Pipeline
    from kinema.server import ServerSettings, create_app, default_data_dir, default_db_url

    if args.workers < 1 or args.queue_size < 1:
        raise InputError("--workers and --queue-size must be at least 1")
    if not 0 <= args.port <= 65535:
        raise InputError(f"--port {args.port}: choose a port from 0 to 65535 (default 8000)")
    if not args.rate_limit >= 0 or args.burst < 1:
        raise InputError("--rate-limit must be 0 (no limit) or more, and --burst at least 1")
    if not args.max_upload_mb > 0 or not args.max_seconds > 0:
        raise InputError("--max-upload-mb and --max-seconds must be above 0")
    data_dir = Path(args.data).expanduser() if args.data else default_data_dir()
    db_url = args.db or default_db_url(data_dir)
    store = open_store(db_url)  # a bad --db fails now, before the model loads
    pipe = Pipeline.from_checkpoint(args.checkpoint).set_precision(args.precision)
    if args.compile:
        pipe.compile()
    settings = ServerSettings(data_dir=data_dir, db_url=db_url, workers=args.workers, queue_size=args.queue_size,
                              rate=args.rate_limit, burst=args.burst, max_upload_bytes=int(args.max_upload_mb * 2**20),
                              max_seconds=args.max_seconds)
    app = create_app(pipe, settings)
    if not store.list_keys():
        print(f"kinema: no API keys yet; make one with `kinema keys add NAME --db {db_url}`")
    print(f"kinema: serving {pipe.info.id} ({pipe.precision}) on http://{args.host}:{args.port} (data: {data_dir}, db: {db_url})",
          flush=True)
    level = "info" if logging.getLogger().isEnabledFor(logging.INFO) else "warning"
    uvicorn.run(app, host=args.host, port=args.port, log_level=level)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve", help="serve the OpenAI-compatible Videos API and web page",
        description="Serve an OpenAI-compatible Videos API (/v1/videos) and a web page at /. Every call needs "
        "an API key from `kinema keys add NAME`. Jobs persist in the database and rerun after a restart.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--db", help="SQLAlchemy URL of the job store (default sqlite:///DATA/kinema.db); "
                        "postgresql://... to share a queue between hosts")
    parser.add_argument("--data", help="folder for videos and the default database "
                        "(default $KINEMA_DATA_DIR or ~/.local/share/kinema/server)")
    parser.add_argument("--workers", type=int, default=1, help="videos made at once (default 1)")
    parser.add_argument("--checkpoint", help="checkpoint folder (default: the shipped model)")
    parser.add_argument("--compile", action="store_true",
                        help="torch.compile the transformer; each video size compiles once (about a minute on "
                             "CPU), then every request runs faster")
    parser.add_argument("--precision", choices=PRECISION_CHOICES, default="auto", help=PRECISION_HELP)
    parser.add_argument("--queue-size", type=int, default=64, help="queued videos before 429 (default 64)")
    parser.add_argument("--rate-limit", type=float, default=20.0,
                        help="requests per second per key, token bucket; 0 for none (default 20)")
    parser.add_argument("--burst", type=int, default=100, help="token bucket size per key (default 100)")
    parser.add_argument("--max-upload-mb", type=float, default=10.0, help="upload size limit (default 10)")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="longest video a request may ask for")
    parser.set_defaults(handler=run_serve)
