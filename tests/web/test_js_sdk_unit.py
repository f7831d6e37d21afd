"""The JavaScript SDK's own unit tests (intercom/web/sdk/test/, node's test runner) as part of
``make test``: the registration and call rules against a fake hub, MediaSources, the types."""

from __future__ import annotations

import asyncio
import re
import shutil

from intercom.web import DIST

SDK = DIST.parent / "sdk"
RUN_LIMIT = 120  # seconds; the tests take about 15 s (a tsc run is most of it)


async def test_the_sdk_unit_tests_pass():
    assert shutil.which("node"), "missing node: run scripts/setup.sh"
    assert (DIST.parent / "node_modules").is_dir(), "missing intercom/web/node_modules: run scripts/setup.sh"
    files = sorted(str(path) for path in (SDK / "test").glob("*.test.mjs"))
    assert len(files) >= 4, files
    # --test-force-exit: JsSIP's transaction timers (up to 32 s) outlive a test's client.
    process = await asyncio.create_subprocess_exec(
        "node", "--test", "--test-force-exit", *files, cwd=DIST.parent,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT,
    )  # fmt: skip
    async with asyncio.timeout(RUN_LIMIT):
        output, _ = await process.communicate()
    text = output.decode()
    counts = {name: int(count) for name, count in re.findall(r"^# (pass|fail|cancelled) (\d+)$", text, re.MULTILINE)}
    assert process.returncode == 0 and counts.get("fail") == 0 and counts.get("cancelled") == 0, text[-5000:]
    assert counts["pass"] >= 24, text[-5000:]
