"""Errors meant for people: each names the input at fault and what would work."""


class KinemaError(Exception):
    """Base class; the CLI prints the message in one line and exits with `exit_code`."""

    exit_code = 2


def one_line(text: str) -> str:
    """`text` as a single printable line: bytes echoed from a damaged file (newlines, control
    characters) are written as escapes, so an error message is always exactly one line."""
    return "".join(ch if ch.isprintable() else ascii(ch)[1:-1] for ch in str(text))


class InputError(KinemaError):
    """A file, size, duration or option that kinema cannot use."""


class ConfigError(KinemaError):
    """A configuration file or value that is missing or invalid."""


class CheckpointError(KinemaError):
    """A checkpoint folder that is missing, incomplete or incompatible."""


class RefusedError(KinemaError):
    """A prompt refused by the safety policy."""

    exit_code = 3

    def __init__(self, category: str, reason: str):
        super().__init__(f"prompt refused ({category}): {reason}")
        self.category = category
        self.reason = reason


class CancelledError(KinemaError):
    """A generation cancelled by its caller between steps."""

    exit_code = 130
