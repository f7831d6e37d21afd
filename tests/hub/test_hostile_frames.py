"""The hub keeps serving after a stream of broken frames on the same connection."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import random

import pytest

from intercom.hub import HubConfig
from intercom.sdk.registration import RegistrationState
from intercom.sip import Response, parse_message

from ..conftest import STEP, VECTORS

FRAMES = 2_000


@pytest.fixture
def hub_config(hub_config: HubConfig) -> HubConfig:
    """All the frames in one burst: what is tested here is the parser, not the message rate."""
    return dataclasses.replace(hub_config, sip_message_burst=FRAMES + 10)


def mutated_frames(seed: int, count: int) -> list[str | bytes]:
    """Real browser messages, damaged the ways a bad peer or a bug would damage them."""
    rng = random.Random(seed)
    originals = [path.read_bytes() for path in sorted(VECTORS.glob("*.sip"))]
    frames: list[str | bytes] = []
    for _ in range(count):
        data = bytearray(rng.choice(originals))
        for _ in range(rng.randint(1, 6)):
            operation = rng.randrange(6)
            position = rng.randrange(len(data))
            if operation == 0:
                data[position] = rng.randrange(256)
            elif operation == 1:
                del data[position : position + rng.randint(1, 40)]
            elif operation == 2:
                data[position:position] = rng.choice([b"\r\n", b":", b";", b"<", b'"', b"\x00", b" ", b"\r\n\r\n"])
            elif operation == 3:
                data = data[:position]
            elif operation == 4:
                data[position:position] = b"X-Flood: " + b"y" * rng.choice([10, 1_000, 70_000]) + b"\r\n"
            else:
                lines = bytes(data).split(b"\r\n")
                lines.insert(rng.randrange(len(lines)), rng.choice(lines))
                data = bytearray(b"\r\n".join(lines))
            if not data:
                data = bytearray(b"\r\n")
        frames.append(bytes(data) if rng.random() < 0.3 else bytes(data).decode("utf-8", errors="replace"))
    return frames


async def test_hub_answers_a_good_register_after_thousands_of_broken_frames(hub, raw_sip, caplog):
    caplog.set_level(logging.INFO)
    sip = await raw_sip()
    for frame in mutated_frames(seed=20261124, count=FRAMES):
        await sip.send(frame)
    good = RegistrationState(hub.address).build(hub.token("survivor"))
    await sip.send(good)
    async with asyncio.timeout(STEP * 3):
        while True:
            try:
                reply = parse_message(await sip.websocket.recv())
            except Exception:
                continue  # the hub echoes damaged headers in some of its 400s
            if isinstance(reply, Response) and reply.headers.get("Call-ID") == good.call_id:
                break
    assert reply.status_code == 200
    assert len(hub.running.registrar.lookup("survivor")) == 1
    crashes = [record for record in caplog.records if record.levelname in ("ERROR", "CRITICAL")]
    assert crashes == [], [record.getMessage() for record in crashes[:3]]
