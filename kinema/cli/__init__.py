"""The `kinema` command: one parser, a module per subcommand group, thin over the library."""

from __future__ import annotations

import argparse
import logging
import re
import signal
import sys
import threading

from kinema import __version__
from kinema.cli import eval as evaluation
from kinema.cli import generate, keys, safety, serve, train, verify, world
from kinema.errors import KinemaError, file_error, one_line

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
    _values_may_start_with_minus(parser)
    return parser


def _values_may_start_with_minus(parser: argparse.ArgumentParser) -> None:
    """Let `--size -16x32` reach the option's own check ("size -16x32: ..."), as `--seed -1` does: argparse
    takes only plain negative numbers as values and calls anything else after a dash a missing value. No
    kinema option is spelled with a dash and a digit, so a dash and a digit always start a value."""
    parser._negative_number_matcher = re.compile(r"^-\d")
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                _values_may_start_with_minus(child)


def _release_large_buffers() -> None:
    """Serve big tensors from mmap so freed decode chunks go back to the OS (glibc only): long videos then
    decode in flat memory instead of a heap that fragments as chunks come and go."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").mallopt(-3, 1 << 20)  # M_MMAP_THRESHOLD = 1 MiB
    except (OSError, AttributeError):
        pass


class Terminated(KeyboardInterrupt):
    """SIGTERM (`kill PID`): unwound like Ctrl-C, so temporary files are removed and no output is half-written."""


def _terminated(signum, frame) -> None:
    raise Terminated


def main(argv: list[str] | None = None) -> int:
    _release_large_buffers()
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    if unknown:
        command = " ".join(["kinema"] + [value for name, value in vars(args).items()
                                         if (name == "command" or name.endswith("_command")) and value])
        quote = "; quote a prompt of several words" if any(not word.startswith("-") for word in unknown) else ""
        parser.error(f"unrecognized arguments: {' '.join(unknown)}{quote}; see `{command} --help` for the options")
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING, format="kinema: %(message)s")
    if not getattr(args, "handler", None):
        parser.print_help()
        return 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGTERM, _terminated) if in_main_thread else None
    try:
        return int(args.handler(args) or 0)
    except KinemaError as exc:
        print(f"kinema: error: {one_line(exc)}", file=sys.stderr)
        return exc.exit_code
    except OSError as exc:  # a file or disk problem met outside kinema's own checks: still one line, naming it
        error = file_error(exc)
        print(f"kinema: error: {one_line(error)}", file=sys.stderr)
        return error.exit_code
    except KeyboardInterrupt as exc:
        print("kinema: interrupted", file=sys.stderr)
        return 143 if isinstance(exc, Terminated) else 130  # 128 + the signal's number, as a shell reports it
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)
