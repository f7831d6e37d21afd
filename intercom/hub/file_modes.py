"""The hub's data directory kept to its own user: every folder 0700, every file 0600 at most.

It holds the database (key secrets, the call log), recordings (voicemails are personal data), the
hub's private key and the door's unlock log. New files are made private (the service's
``UMask=0077``, the CLI's umask, explicit modes), but a directory made by hand or by an older
version may be 0755 with 0644 files: at each start the hub takes the group's and others' bits
off whatever it finds, and logs what it changed.
"""

from __future__ import annotations

import logging
import os
import stat
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

OTHERS = 0o077  # the group's and everyone else's bits
NAMED = 5  # paths a log line names; the rest are counted


@dataclass(frozen=True)
class Narrowed:
    path: Path
    before: int
    after: int


def make_private(data_dir: Path) -> list[Narrowed]:
    """Take the group's and others' bits off ``data_dir`` and everything under it, symbolic links
    left alone (and not followed); what was changed, logged in one line."""
    narrowed: list[Narrowed] = []
    failed: list[str] = []
    for folder, _, files in os.walk(data_dir, onerror=lambda error: failed.append(str(error))):  # links not followed
        for path in (Path(folder), *(Path(folder, name) for name in files)):
            try:
                status = os.lstat(path)
                mode = stat.S_IMODE(status.st_mode)
                if stat.S_ISLNK(status.st_mode) or not mode & OTHERS:
                    continue
                os.chmod(path, mode & ~OTHERS)
            except OSError as error:  # a file another user owns (copied in by root): said, not fatal
                failed.append(f"{path}: {error.strerror}")
                continue
            narrowed.append(Narrowed(path, mode, mode & ~OTHERS))
    if narrowed:
        shown = ", ".join(
            f"{item.path.relative_to(data_dir)} {item.before:o}->{item.after:o}" for item in narrowed[:NAMED]
        )
        more = f" and {len(narrowed) - NAMED} more" if len(narrowed) > NAMED else ""
        log.warning("data directory %s: made private to the hub's user: %s%s", data_dir, shown, more)
    if failed:
        log.warning("data directory %s: could not make private: %s", data_dir, "; ".join(failed[:NAMED]))
    return narrowed
