"""A hub whose data directory is a small filesystem of its own, for tests/hub/test_storage_faults.py.

Run inside ``unshare --user --map-root-user --mount`` with a tmpfs mounted on ``DIR`` (no root
needed): ``python -m tests.hub.fault_hub DIR [--read-only]``. It stores an admin key and the call
flow ``door`` (ring ``client:desk``, the whole call recorded), with ``--read-only`` remounts the
filesystem read-only (as ext4 does after errors) before the hub opens it, serves on 127.0.0.1,
prints one JSON line (``port``, ``key_id``, ``key_secret``), then obeys stdin, a command a line,
answering ``ok``: ``fill`` (the filesystem full) and ``free`` (room again). It stops when stdin closes.
"""

from __future__ import annotations

import asyncio
import json
import logging
import subprocess
import sys
from pathlib import Path

from intercom.auth import ADMIN
from intercom.hub import HubConfig, Storage, running_hub
from intercom.hub.callflows import CallFlow
from intercom.hub.retention import MB, StorageLimits
from intercom.media import MediaPolicy

FILL = "fill.bin"
# Faults show at once in tests: rows held back retried every 0.2 s; recordings stop below 1 MB free.
LIMITS = StorageLimits(min_free_bytes=1 * MB, retry_seconds=0.2)


async def prepare(data_dir: Path) -> tuple[str, str]:
    storage = Storage(data_dir)
    key = await storage.create_key("tests", ADMIN)
    steps = [{"id": "ring", "action": "transfer", "options": {"destination": "client:desk", "timeout": 10}}]
    await storage.create_call_flow(
        CallFlow.model_validate({"id": "door", "title": "door", "record": True, "steps": steps})
    )
    storage.close()
    return key.id, key.secret


def fill(data_dir: Path) -> None:
    """Write until the filesystem has not one byte left."""
    with open(data_dir / FILL, "ab", buffering=0) as file:
        for chunk in (1 << 20, 4096, 1):
            try:
                while True:
                    file.write(b"\0" * chunk)
            except OSError:
                pass


async def serve(data_dir: Path, read_only: bool) -> None:
    key_id, secret = await prepare(data_dir)
    if read_only:
        subprocess.run(["mount", "-o", "remount,ro", str(data_dir)], check=True)
    storage = Storage(data_dir)
    config = HubConfig(
        data_dir=data_dir,
        port=0,
        media=MediaPolicy(host_addresses=("127.0.0.1",), jitter_frames=0),
        storage_limits=LIMITS,
    )
    async with running_hub(config, storage):
        print(json.dumps({"port": config.port, "key_id": key_id, "key_secret": secret}), flush=True)
        loop = asyncio.get_running_loop()
        while command := (await loop.run_in_executor(None, sys.stdin.readline)).strip():
            if command == "fill":
                fill(data_dir)
            elif command == "free":
                (data_dir / FILL).unlink()
            print("ok", flush=True)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    asyncio.run(serve(Path(sys.argv[1]), "--read-only" in sys.argv[2:]))
