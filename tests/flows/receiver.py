"""A web service for flows to talk to: an HTTP server on 127.0.0.1, in a thread, that keeps every
request and answers what the test says."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from ..units import STEP


@dataclass
class Posted:
    """A request the service got (a POST, or a GET with an empty body)."""

    path: str
    content_type: str
    body: bytes
    headers: dict[str, str]


Answer = Callable[[Posted], tuple[int, bytes]]


class Receiver:
    def __init__(self, answer: Answer, loop: asyncio.AbstractEventLoop) -> None:
        self.posted: asyncio.Queue[Posted] = asyncio.Queue()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self.do_POST()

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                posted = Posted(self.path, self.headers.get("Content-Type", ""), body, dict(self.headers.items()))
                loop.call_soon_threadsafe(receiver.posted.put_nowait, posted)
                status, reply = answer(posted)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}{path}"

    async def next(self) -> Posted:
        async with asyncio.timeout(STEP):
            return await self.posted.get()


@contextmanager
def receiver(answer: Answer = lambda posted: (204, b"")) -> Iterator[Receiver]:
    running = Receiver(answer, asyncio.get_running_loop())
    thread = threading.Thread(target=running.server.serve_forever, daemon=True)
    thread.start()
    try:
        yield running
    finally:
        running.server.shutdown()
        running.server.server_close()
        thread.join(STEP)
