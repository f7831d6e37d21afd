"""Later: the MQTT bridge's publishers told after a call's set-up, in order, each row as it was;
Publishers: each told, whatever the one before did."""

from __future__ import annotations

import asyncio

from intercom.hub.call_log import Later, Publishers
from intercom.hub.records import CallRecord, PublishedRow, Webhook

from ..conftest import STEP


class Heard:
    def __init__(self, fail: bool = False) -> None:
        self.rows: list[tuple[str, str, bool]] = []
        self.told = asyncio.Event()
        self.fail = fail

    async def publish(self, row: PublishedRow, created: bool, extra: Webhook | None = None) -> None:
        self.rows.append((row.id, getattr(row, "status", ""), created))
        self.told.set()
        if self.fail:
            raise RuntimeError("a publisher's bug")


async def test_rows_are_told_later_in_order_as_they_were_and_past_a_failing_publisher(caplog):
    failing, heard = Heard(fail=True), Heard()
    later = Later(Publishers(failing, heard), delay=0.01)
    call = CallRecord(source="client:door", destination="client:desk")
    await later.publish(call, created=True)
    call.status = "ended"  # the call log changes its rows in place
    await later.publish(call, created=False)
    assert heard.rows == []  # nothing on the way of the call
    async with asyncio.timeout(STEP):
        await heard.told.wait()
    assert heard.rows == [(call.id, "starting", True), (call.id, "ended", False)]
    assert failing.rows == heard.rows and caplog.text.count("publishing CallRecord") == 2
