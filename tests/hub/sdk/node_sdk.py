"""The Node SDK's harness (messagebird_node.mjs) from a test: one running process per test, one
SDK call at a time, its answer or its error back."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...conftest import end_with_its_input
from ...units import STEP

HERE = Path(__file__).parent
HARNESS = HERE / "messagebird_node.mjs"
# A downloaded recording comes back as one JSON line: its bytes as text, a zero byte written \u0000.
ANSWER_LIMIT = 64 * 1024 * 1024


@dataclass
class NodeSdkError(Exception):
    """What the SDK called back with instead of a result."""

    message: str
    status_code: int | None
    errors: list[dict[str, Any]] | None


class NodeSdk:
    """``await sdk.call("callflows.read", flow_id)`` runs ``client.callflows.read(flow_id, callback)``."""

    def __init__(self, process: asyncio.subprocess.Process, key: str) -> None:
        self.process = process
        self.key = key

    async def call(self, method: str, *args: Any, key: str | None = None) -> Any:
        request = {"key": key or self.key, "method": method, "args": list(args)}
        assert self.process.stdin is not None and self.process.stdout is not None
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        async with asyncio.timeout(STEP):
            await self.process.stdin.drain()
            line = await self.process.stdout.readline()
        if not line:
            raise RuntimeError(f"the harness ended: {(await self.process.stderr.read()).decode()}")  # type: ignore[union-attr]
        answer = json.loads(line)
        if "error" in answer:
            raise NodeSdkError(answer["error"]["message"], answer["error"]["statusCode"], answer["error"]["errors"])
        return answer["result"]


@contextlib.asynccontextmanager
async def node_sdk(address: str, ca_file: Path, key: str) -> AsyncIterator[NodeSdk]:
    """The harness talking to the hub at ``address``, trusting ``ca_file``."""
    missing = [
        what
        for what, ok in (("node", shutil.which("node")), (f"{HERE}/node_modules", (HERE / "node_modules").is_dir()))
        if not ok
    ]
    if missing:
        raise RuntimeError(f"missing {', '.join(missing)}: run scripts/setup.sh")
    environment = {**os.environ, "NODE_EXTRA_CA_CERTS": str(ca_file)}
    async with asyncio.timeout(STEP):
        process = await asyncio.create_subprocess_exec(
            "node", str(HARNESS), "--hub", address, env=environment, limit=ANSWER_LIMIT,
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        )  # fmt: skip
    try:
        yield NodeSdk(process, key)
    finally:
        await end_with_its_input(process)
