"""The `kinema` command: one parser, a module per subcommand group, thin over the library."""

from __future__ import annotations

import argparse
import logging
import sys

from kinema import __version__
from kinema.cli import eval as evaluation
from kinema.cli import generate, keys, safety, serve, train, verify, world
from kinema.errors import KinemaError, one_line

# Each module adds its subcommands with `register(subparsers)`; handlers get the parsed args.
COMMAND_MODULES = [generate, world, train, verify, keys, safety, serve, evaluation]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="kinema",
        description="kinema: open text-to-video. Generate, extend, interpolate and join videos with a "
        "spacetime diffusion transformer; render its physics world; verify provenance; serve an "
        "OpenAI-compatible Videos API.",
    )
    parser.add_argument("--version", action="version", version=f"kinema {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log more detail to stderr")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in COMMAND_MODULES:
        module.register(subparsers)
    return parser


def _release_large_buffers() -> None:
    """Serve big tensors from mmap so freed decode chunks go back to the OS (glibc only): long videos then
    decode in flat memory instead of a heap that fragments as chunks come and go."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except (OSError, AttributeError):
        pass


def main(argv: list[str] | None = None) -> int:
    _release_large_buffers()
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="kinema: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    try:
        return int(args.handler(args) or 0)
    except KinemaError as exc:
        print(f"kinema: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("kinema: interrupted", file=sys.stderr)
        return 130
