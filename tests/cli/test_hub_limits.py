"""`intercom hub`'s connection-limit flags, in a hub process of its own."""

from __future__ import annotations

import asyncio

import pytest
from websockets.asyncio.client import connect
from websockets.exceptions import InvalidStatus

from intercom.cli import main

from ..conftest import STEP
from .test_cli import free_port, start_hub_process


async def test_the_flags_reach_the_hub_and_its_start_line_says_them(tmp_path):
    port = free_port()
    hub, log = await start_hub_process(
        "--data-dir", str(tmp_path), "--port", str(port), "--max-connections", "100",
        "--max-connections-per-source", "1",
    )  # fmt: skip
    try:
        assert any("available; at most 100 connections (1 per source), 256 kept in reserve" in line for line in log), (
            log
        )
        async with asyncio.timeout(STEP):
            first = await connect(f"ws://127.0.0.1:{port}/", subprotocols=["sip"])  # type: ignore[list-item]
            with pytest.raises(InvalidStatus) as refused:
                await connect(f"ws://127.0.0.1:{port}/", subprotocols=["sip"])  # type: ignore[list-item]
            assert refused.value.response.status_code == 503
            await first.close()
    finally:
        hub.terminate()
        hub.wait(timeout=10)


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--sip-message-burst", "0", "0: give a whole number above 0"),
        ("--register-timeout", "-5", "-5: give a number above 0"),
        ("--max-connections", "many", "many: give a whole number above 0"),
        ("--max-calls", "0", "0: give a whole number above 0"),
        ("--max-calls-per-identity", "1.5", "1.5: give a whole number above 0"),
        ("--media-timeout", "soon", "soon: give a number above 0"),
        ("--max-call-duration", "-1", "-1: give a number above 0"),
        ("--max-ring-legs", "nan", "nan: give a whole number above 0"),
        ("--recording-sync-seconds", "0", "0: give a number above 0"),
        ("--heartbeat-seconds", "-5", "-5: give a number above 0"),
        ("--heartbeat-seconds", "nan", "nan: give a number above 0"),
        ("--heartbeat-seconds", "inf", "inf: give a number above 0"),
    ],
)
def test_a_bad_limit_is_refused_naming_the_flag(tmp_path, capsys, flag, value, message):
    with pytest.raises(SystemExit) as exited:
        main(["hub", "--data-dir", str(tmp_path), flag, value])
    assert exited.value.code == 2
    assert f"argument {flag}: {message}" in capsys.readouterr().err
