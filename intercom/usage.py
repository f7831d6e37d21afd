"""What the commands' modules (cli.py and those it registers) share without importing each other:
the one error every command raises for bad input, and secrets read from files."""

from __future__ import annotations

import sys
from pathlib import Path


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""


def secret_from_file(option: str, path: Path, min_length: int = 1) -> str:
    """A secret from its file (``-``: standard input): a secret never goes on the command line,
    where ``ps`` shows it to every user."""
    try:
        secret = (sys.stdin.readline() if str(path) == "-" else path.read_text()).strip()
    except OSError as exc:
        raise UsageError(f"{option} {path}: {exc.strerror}") from None
    if len(secret) < min_length or any(char.isspace() for char in secret):
        length = f" of at least {min_length} characters" if min_length > 1 else ""
        raise UsageError(f"{option} {path}: the secret must be one word{length}")
    return secret


def on_the_command_line(option: str, instead: str) -> str:
    """The refusal of an option that would put a secret on the command line."""
    return f"{option} would put the secret on the command line, where ps shows it to every user: give {instead}"
