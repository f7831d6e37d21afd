"""Drive the node harnesses from tests: check the tools exist, run ``jssip_call.mjs`` as a live page."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ..conftest import STEP

HERE = Path(__file__).parent
CHROMIUM = "/usr/bin/chromium"
CALL_HARNESS = HERE / "jssip_call.mjs"


def require_browser(node_modules: Path = HERE / "node_modules") -> None:
    """Fail with the one command that fixes it when node, Chromium or the node modules are missing."""
    missing = [what for what, ok in (("node", shutil.which("node")), ("chromium", Path(CHROMIUM).exists()),
               (str(node_modules), node_modules.is_dir())) if not ok]  # fmt: skip
    assert not missing, f"missing {missing}: run scripts/setup.sh"


class JsSipPage:
    """A JsSIP UA in headless Chromium, registered with the hub, taking commands and reporting events.

    ``events`` holds every event the page reported, in order; ``sip`` the frames it sent and got.
    """

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.events: list[dict[str, Any]] = []
        self._changed = asyncio.Event()
        self._reader = asyncio.create_task(self._read())
        self._stderr = b""

    @classmethod
    async def open(
        cls, address: str, token: str, user_data_dir: Path, page_port: int, timeout_ms: int = 60000
    ) -> JsSipPage:
        require_browser()
        process = await asyncio.create_subprocess_exec(
            "node", str(CALL_HARNESS), "--url", f"wss://{address}", "--host", address, "--token", token,
            "--user-data-dir", str(user_data_dir), "--timeout-ms", str(timeout_ms), "--page-port", str(page_port),
            *(["--debug"] if os.environ.get("JSSIP_DEBUG") else []),  # JsSIP's own log and the console on stderr
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so that Chromium can be killed with it
        )  # fmt: skip
        return cls(process)

    async def _read(self) -> None:
        assert self.process.stdout is not None and self.process.stderr is not None
        stderr = asyncio.create_task(self.process.stderr.read())
        async for line in self.process.stdout:
            if line.strip():
                self.events.append(json.loads(line))
                self._changed.set()
        self._stderr = await stderr
        self._changed.set()

    @property
    def sip(self) -> list[str]:
        """The SIP exchange as the page saw it, each frame prefixed with ``>>`` (sent) or ``<<`` (received)."""
        return [
            (">> " if event["direction"] == "out" else "<< ") + event["text"]
            for event in self.events
            if event["event"] == "sip"
        ]

    def of(self, name: str) -> list[dict[str, Any]]:
        return [event for event in self.events if event["event"] == name]

    def report(self) -> str:
        """What to show when an assertion fails: the events (but SIP), the SIP exchange, stderr."""
        events = [event for event in self.events if event["event"] != "sip"]
        return "\n".join(
            ["events:", *map(json.dumps, events), "sip:", *self.sip, "stderr:", self._stderr.decode()[-3000:]]
        )

    async def until(self, condition: Callable[[], bool], timeout: float = STEP) -> None:
        """Wait until ``condition()`` holds, checked as events arrive; fails early if the harness exits."""
        try:
            async with asyncio.timeout(timeout):
                while not condition():
                    if self._reader.done():
                        raise AssertionError("the browser harness exited")
                    self._changed.clear()
                    await self._changed.wait()
        except (TimeoutError, AssertionError) as exc:
            raise AssertionError(f"{exc or 'timed out'} waiting for the page\n{self.report()}") from None

    async def event(self, name: str, timeout: float = STEP) -> dict[str, Any]:
        """The first event called ``name``, waiting for it if it has not come yet."""
        await self.until(lambda: bool(self.of(name)), timeout)
        return self.of(name)[0]

    async def command(self, cmd: str, **args: Any) -> None:
        """Send a command and wait until the page has carried it out."""
        assert self.process.stdin is not None
        done = len([event for event in self.of("done") if event["command"] == cmd])
        self.process.stdin.write(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
        async with asyncio.timeout(STEP):
            await self.process.stdin.drain()
        await self.until(lambda: len([event for event in self.of("done") if event["command"] == cmd]) > done)

    async def close(self) -> int | None:
        """Un-register, close Chromium and wait for the harness to exit (killing it if it hangs)."""
        assert self.process.stdin is not None
        with contextlib.suppress(ConnectionError):
            self.process.stdin.write(b'{"cmd":"stop"}\n')
            self.process.stdin.close()
        try:
            async with asyncio.timeout(STEP):
                await self._reader
                return await self.process.wait()
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            async with asyncio.timeout(STEP):
                await self.process.wait()
            return None
