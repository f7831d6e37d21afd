"""A stranger's flood, in a process of its own: idle SIP WebSockets from many loopback addresses, and
one client sending OPTIONS as fast as it can (connecting again each time the hub closes it).

Run by tests/hub/test_flood.py and bench/flood.py, so that the flood costs the hub's event loop
only what a flood from the network would (its sockets), not a share of its own loop. It talks on
its standard streams, one JSON object a line:

- after start-up: ``{"idle": open, "idle_refused": refused}``, once the idle connections are open
  (or refused) and the flooder has sent its first OPTIONS;
- on a line ``stop`` (or the end of standard input): it goes on until ``--options`` were sent in
  all, then writes ``{"sent": .., "answered": .., "closed": {code: count}, "connections": ..}`` and
  exits, closing everything.

Usage: ``python bench/flooder.py --port PORT [--idle 1000] [--sources 40] [--options 10000] [--nice 19]``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import sys
from collections import Counter

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from intercom.transport.limits import raise_descriptor_limit

HOST = "127.0.0.1"
FLOODER_SOURCE = "127.0.1.1"  # apart from the idle ones' 127.0.0.2...
OPEN_AT_ONCE = 100  # idle connections opened concurrently
YIELD_EVERY = 50  # OPTIONS sent between two looks at what came back


def options(host: str, number: int) -> str:
    """An OPTIONS in a transaction of its own (a new branch each)."""
    return (
        f"OPTIONS sip:{host} SIP/2.0\r\n"
        f"Via: SIP/2.0/WSS flood.invalid;branch=z9hG4bKflood{number}\r\n"
        "Max-Forwards: 69\r\n"
        f"To: <sip:{host}>\r\n"
        f"From: <sip:flood@{host}>;tag=flood\r\n"
        "Call-ID: flood\r\n"
        f"CSeq: {number + 1} OPTIONS\r\n"
        "Content-Length: 0\r\n\r\n"
    )


UPGRADE = (
    "GET / HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: sip\r\n\r\n"
)


async def open_idle(host: str, port: int, count: int, sources: int) -> tuple[list[asyncio.StreamWriter], int]:
    """``count`` SIP WebSockets, upgraded and then silent, spread over ``sources`` addresses
    127.0.0.2 and up. Written by hand, not with a WebSocket library: a stranger's idle
    connection needs no more, and the flooder's own CPU stays off the figures."""
    gate = asyncio.Semaphore(OPEN_AT_ONCE)
    request = UPGRADE.format(host=f"{host}:{port}").encode()

    async def one(index: int) -> asyncio.StreamWriter | None:
        async with gate:
            try:
                reader, writer = await asyncio.open_connection(
                    host, port, local_addr=(f"127.0.0.{2 + index % sources}", 0)
                )
                writer.write(request)
                head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            except (OSError, TimeoutError, asyncio.IncompleteReadError):
                return None
            if head.startswith(b"HTTP/1.1 101 "):
                return writer
            writer.close()
            return None

    opened = await asyncio.gather(*(one(index) for index in range(count)))
    idle = [writer for writer in opened if writer is not None]
    return idle, count - len(idle)


class Flood:
    def __init__(self, url: str, host: str, total: int) -> None:
        self.url = url
        self.host = host
        self.total = total
        self.sent = 0
        self.answered = 0
        self.closed: Counter[str] = Counter()
        self.connections = 0
        self.started = asyncio.Event()
        self.stop = asyncio.Event()

    async def run(self) -> None:
        """Connect, send as fast as the socket takes it, connect again when closed; until both
        ``total`` are sent and ``stop`` is set."""
        while not (self.stop.is_set() and self.sent >= self.total):
            try:
                websocket = await connect(
                    self.url,
                    subprotocols=["sip"],
                    local_addr=(FLOODER_SOURCE, 0),
                    ping_interval=None,  # type: ignore[list-item]
                )
            except (InvalidStatus, OSError) as exc:
                self.closed[type(exc).__name__] += 1
                await asyncio.sleep(0.01)  # refused: a flooder would retry at once, but not spin
                continue
            self.connections += 1
            reader = asyncio.create_task(self._read(websocket))
            try:
                while not (self.stop.is_set() and self.sent >= self.total):
                    await websocket.send(options(self.host, self.sent))
                    self.sent += 1
                    self.started.set()
                    if self.sent % YIELD_EVERY == 0:
                        await asyncio.sleep(0)  # so that it reads the close and connects again
            except ConnectionClosed as exc:
                self.closed[str(exc.rcvd.code if exc.rcvd else "none")] += 1
            finally:
                reader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await reader
                await websocket.close()

    async def _read(self, websocket: ClientConnection) -> None:
        with contextlib.suppress(ConnectionClosed):
            async for _ in websocket:
                self.answered += 1


async def main(args: argparse.Namespace) -> None:
    raise_descriptor_limit()
    os.nice(args.nice)
    url = f"ws://{args.host}:{args.port}/"
    idle, refused = await open_idle(args.host, args.port, args.idle, args.sources)
    flood = Flood(url, f"{args.host}:{args.port}", args.options)
    flooding = asyncio.create_task(flood.run())
    await flood.started.wait()
    print(json.dumps({"idle": len(idle), "idle_refused": refused}), flush=True)
    loop = asyncio.get_running_loop()
    while (line := await loop.run_in_executor(None, sys.stdin.readline)) and line.strip() != "stop":
        pass
    flood.stop.set()
    await flooding
    print(
        json.dumps(
            {"sent": flood.sent, "answered": flood.answered, "closed": flood.closed, "connections": flood.connections}
        ),
        flush=True,
    )
    for writer in idle:
        writer.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--idle", type=int, default=1000, help="idle SIP WebSockets to open")
    parser.add_argument("--sources", type=int, default=40, help="loopback addresses they come from")
    parser.add_argument("--options", type=int, default=10_000, help="OPTIONS to send at the least")
    parser.add_argument("--nice", type=int, default=0, help="lower the flooder's priority by this much")
    asyncio.run(main(parser.parse_args()))
