"""Runs a call flow's steps in order against one call.

Each action is one coroutine in :data:`ACTIONS`, taking the call and the step; a new action
(``say``, ``play``, ``record`` ...) is one more entry. A step returns ``True`` when the call is
over (answered and ended, or hung up), which stops the flow; otherwise the next step runs.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from .callflows import CallFlow, Step, TransferOptions

if TYPE_CHECKING:
    from .calls import HubCall

log = logging.getLogger(__name__)


async def _transfer(call: HubCall, step: Step) -> bool:
    options = step.typed_options()
    assert isinstance(options, TransferOptions)
    return await call.transfer(options)


async def _hangup(call: HubCall, step: Step) -> bool:
    call.hangup()
    return True


ACTIONS: dict[str, Callable[[HubCall, Step], Awaitable[bool]]] = {"transfer": _transfer, "hangup": _hangup}


async def run_flow(flow: CallFlow, call: HubCall) -> bool:
    """Run the steps until one ends the call; ``True`` when a callee answered."""
    for step in flow.steps:
        if call.over:
            break
        log.info("call %s: flow %s step %s (%s)", call.caller.call_id, flow.id, step.id, step.action)
        if await ACTIONS[step.action](call, step):
            break
    return call.callee is not None
