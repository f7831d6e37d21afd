"""A Chromium the test drives one step at a time (desk_driver.mjs), to act between its steps."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from intercom.web import DIST

from ..conftest import end_with_its_input
from ..units import STEP
from .conftest import HERE, require_web_browser

PHONE = {"width": 390, "height": 844}  # a phone's viewport, for the screenshots the README shows
LAUNCH_SECONDS = 20.0  # Chromium's first start on a busy 2-core box


class PageError(AssertionError):
    """A command failed in the page (a selector never showed, a script threw)."""


class DeskBrowser:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self._ids = itertools.count(1)
        self._lock = asyncio.Lock()

    async def _read(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        line = await self.process.stdout.readline()
        if not line:
            raise PageError("the browser driver exited")
        return json.loads(line)

    async def do(self, op: str, timeout: float = STEP, **args: Any) -> Any:
        """Run one command in the page; its result, or PageError with the page's message."""
        assert self.process.stdin is not None
        async with self._lock, asyncio.timeout(timeout):
            command_id = next(self._ids)
            self.process.stdin.write((json.dumps({"id": command_id, "op": op, **args}) + "\n").encode())
            await self.process.stdin.drain()
            answer = await self._read()
        assert answer["id"] == command_id, answer
        if not answer["ok"]:
            raise PageError(f"{op} {args}: {answer['error']}")
        return answer["result"]

    async def goto(self, url: str) -> None:
        await self.do("goto", url=url)

    async def click(self, selector: str) -> None:
        await self.do("click", selector=selector)

    async def shows(self, selector: str, timeout: float = STEP) -> None:
        """Until ``selector`` is visible (a ``data-*`` attribute selector waits for a state)."""
        await self.do("waitFor", timeout=timeout + 1, selector=selector, ms=timeout * 1000)

    async def hidden(self, selector: str, timeout: float = STEP) -> None:
        await self.do("waitFor", timeout=timeout + 1, selector=selector, state="hidden", ms=timeout * 1000)

    async def text(self, selector: str) -> str:
        return await self.do("text", selector=selector)

    async def evaluate(self, expression: str, arg: Any = None) -> Any:
        return await self.do("evaluate", expression=expression, arg=arg)


def require_built_desk() -> None:
    """Fail with the command that fixes it when the page the hub serves was never built."""
    built = DIST / "desk" / "index.html"
    assert built.is_file(), f"missing {built}: run scripts/build-web.sh (make web)"


@contextlib.asynccontextmanager
async def desk_browser(ca_file: Path, **options: Any) -> AsyncIterator[DeskBrowser]:
    """Chromium trusting ``ca_file`` (launch()'s options as keywords), closed at the end."""
    require_web_browser()
    require_built_desk()
    process = await asyncio.create_subprocess_exec(
        "node", str(HERE / "desk_driver.mjs"), json.dumps({"caFile": str(ca_file), **options}),
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip
    browser = DeskBrowser(process)
    try:
        async with asyncio.timeout(LAUNCH_SECONDS):
            assert await browser._read() == {"ready": True}
        yield browser
    finally:
        await end_with_its_input(process)  # the driver closes Chromium when its input ends
