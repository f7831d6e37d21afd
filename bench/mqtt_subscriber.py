"""bench/mqtt.py's MQTT subscriber: a process of its own, as Home Assistant is, so that neither it nor
the units that bench/mqtt.py runs wait on the other's event loop.

It logs in to the broker on 127.0.0.1 with the password read from its standard input's first line
(never a command-line argument), subscribes to the topics given, says ``{"subscribed": true}`` on
a line, then prints a JSON line per message: ``at`` (``time.monotonic()`` when it came: the system's
monotonic clock, the one the bench reads too), ``topic`` and ``payload``. It runs until terminated.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time

import aiomqtt
from mosquitto import HOST


def say(line: dict[str, object]) -> None:
    print(json.dumps(line), flush=True)


async def listen(port: int, user: str, password: str, topics: list[str]) -> None:
    async with aiomqtt.Client(HOST, port, username=user, password=password) as client:
        for topic in topics:
            await client.subscribe(topic, qos=1)
        say({"subscribed": True})
        async for message in client.messages:
            at = time.monotonic()
            say({"at": at, "topic": message.topic.value, "payload": bytes(message.payload).decode()})  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--user", required=True)
    parser.add_argument("topics", nargs="+")
    args = parser.parse_args(argv)
    password = sys.stdin.readline().rstrip("\n")
    asyncio.run(listen(args.port, args.user, password, args.topics))


if __name__ == "__main__":
    main()
