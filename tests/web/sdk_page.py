"""Drive ``sdk_page.mjs`` from a test: our JavaScript SDK in Chromium on the hub's https origin.

The page runs as :class:`~tests.browser.jssip_page.JsSipPage` does (events in order, ``until``,
``event``, ``close``); commands here also bring back what the page's call returned.
"""

from __future__ import annotations

import asyncio
import os
from typing import Any

from intercom.web import DIST

from ..browser.jssip_page import JsSipPage
from ..conftest import STEP
from .conftest import HERE, WebHub, require_web_browser

SDK_PAGE = HERE / "sdk_page.mjs"
SDK_BUNDLE = DIST / "intercom-sdk.js"


class SdkPage(JsSipPage):
    @classmethod
    async def open_on(cls, hub: WebHub) -> SdkPage:
        """A page of ``hub``'s origin with the SDK loaded (not yet set up)."""
        require_web_browser()
        assert SDK_BUNDLE.is_file(), f"missing {SDK_BUNDLE}: run scripts/build-web.sh (make web)"
        process = await asyncio.create_subprocess_exec(
            "node", str(SDK_PAGE), "--origin", hub.origin, "--ca-file", str(hub.ca_file), "--sdk", str(SDK_BUNDLE),
            *(["--debug"] if os.environ.get("SDK_PAGE_DEBUG") else []),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            start_new_session=True,  # its own process group, so that Chromium can be killed with it
        )  # fmt: skip
        page = cls(process)
        await page.event("ready")
        return page

    async def run(self, cmd: str, **args: Any) -> Any:
        """Carry out a command on the page and return its result."""
        await self.command(cmd, **args)
        return [event for event in self.of("done") if event["command"] == cmd][-1]["result"]

    def statuses(self) -> list[str]:
        return [event["status"] for event in self.of("status")]

    def call_statuses(self) -> list[str]:
        return [event["status"] for event in self.of("call.status")]

    async def heard(self, condition: Any, timeout: float = STEP) -> dict[str, Any]:
        """The far end's sound as the page measures it, polled until ``condition(measure)`` holds."""
        measure: dict[str, Any] | None = None
        try:
            async with asyncio.timeout(timeout):
                while True:
                    measure = await self.run("measure")
                    if measure is not None and condition(measure):
                        return measure
                    await asyncio.sleep(0.1)  # the page's analyser moves on in real time
        except TimeoutError:
            raise AssertionError(f"the page never heard that; last {measure}\n{self.report()}") from None
