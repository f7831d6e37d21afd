"""The one error every command raises for bad input, in a module of its own so that the commands'
modules (cli.py and those it registers) share it without importing each other."""

from __future__ import annotations


class UsageError(Exception):
    """Bad input on the command line: printed as one line, exit status 2."""
