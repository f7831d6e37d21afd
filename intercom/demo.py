"""``intercom demo``: a hub and clients on loopback, every status change printed.

What it shows grows with the product. Today: a hub starts, an access key is created, a
desk unit's client connects with a token and reaches ``connected``, a client whose token
names an invalid identity is refused with 406, and the desk client disconnects cleanly.
"""

from __future__ import annotations

import asyncio
import contextlib
import tempfile
from pathlib import Path

from .auth import IncomingCapability, OutgoingCapability, mint_token
from .hub import HubConfig, Storage, running_hub
from .sdk import Client, ClientError

STEP_TIMEOUT = 15.0


def _say(who: str, what: object) -> None:
    print(f"[{who:>5}] {what}", flush=True)


async def run_demo(data_dir: Path | None = None) -> None:
    with tempfile.TemporaryDirectory(prefix="intercom-demo-") as scratch:
        data_dir = data_dir or Path(scratch)
        storage = Storage(data_dir)
        config = HubConfig(data_dir=data_dir, host="127.0.0.1", port=0)
        async with running_hub(config, storage) as hub:
            host = hub.address
            _say("hub", f"listening on ws://{host}/ (data in {data_dir})")
            key = storage.create_key("demo")
            _say("hub", f"access key {key.id} created")

            def desk_token() -> str:
                return mint_token(key, [IncomingCapability("desk"), OutgoingCapability("intercom", "desk")])

            desk = Client(host=host, refresh_token=desk_token, secure=False)
            desk.on("status", lambda status: _say("desk", f"status {status}"))
            await asyncio.wait_for(desk.setup(jwt=desk_token()), STEP_TIMEOUT)
            _say("hub", f"registered: client:desk on {len(hub.registrar.lookup('desk'))} connection(s)")

            bad = Client(host=host, refresh_token=desk_token, secure=False)
            bad.on("status", lambda status: _say("bad", f"status {status}"))
            bad.on("error", lambda error: _say("bad", f"error {error.code}: {error.message}"))
            bad_token = mint_token(key, [IncomingCapability("front door!")])
            with contextlib.suppress(ClientError):  # shown by the handlers above
                await asyncio.wait_for(bad.setup(jwt=bad_token), STEP_TIMEOUT)

            await desk.destroy()
            _say("hub", "demo finished")
