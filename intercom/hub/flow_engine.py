"""Runs a call flow's steps against one call: conditions, keys, jumps and fetched flows.

A step whose ``conditions`` do not all hold is skipped. While a step runs, the keys the party
presses are stored in its ``onKeypressVar`` and, with ``onKeypressGoto``, the first key stops the
step and the flow goes on at that step; a ``record`` step takes its ``finishOnKey`` key itself.
Keys pressed during a step that listens for none are dropped, so a key meant for a menu never
ends the recording after it. Each action is a coroutine in :mod:`intercom.hub.steps`; it
answers what comes next: the next step, the end, or new steps (``fetchCallFlow``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import TYPE_CHECKING

from .callflows import CallFlow, Step
from .steps import ACTIONS, END, Goto, Outcome, Replace, StepRun

if TYPE_CHECKING:
    from .calls import HubCall

log = logging.getLogger(__name__)

MAX_KEYPRESS_VAR = 64  # keys an onKeypressVar keeps, the latest: a code, not whatever a peer sends for an hour


async def run_flow(flow: CallFlow, call: HubCall) -> None:
    """Run the steps until the flow or the call ends."""
    if flow.record:
        call.record_whole_call = True
    steps = list(flow.steps)
    index = 0
    while index < len(steps) and not call.over:
        step = steps[index]
        if not step.runs_with(call.variables):
            log.info("call %s: step %s (%s) skipped: its conditions do not hold", call.id, step.id, step.action)
            index += 1
            continue
        log.info("call %s: step %s (%s)", call.id, step.id, step.action)
        outcome = await _run_step(call, step)
        if outcome is END:
            break
        if isinstance(outcome, Replace):
            steps, index = outcome.steps, 0
            if outcome.record:
                call.record_whole_call = True
        elif isinstance(outcome, Goto):
            index = next(position for position, candidate in enumerate(steps) if candidate.id == outcome.step_id)
        else:
            index += 1


async def _run_step(call: HubCall, step: Step) -> Outcome:
    run = StepRun(call, step, step.typed_options())
    _drain(call.keys)
    if not (step.on_keypress_goto or step.on_keypress_var or step.action == "record"):
        return await ACTIONS[step.action](run)
    action = asyncio.create_task(ACTIONS[step.action](run), name=f"step {step.id}")
    try:
        while True:
            key = asyncio.create_task(call.keys.get())
            await asyncio.wait({action, key}, return_when=asyncio.FIRST_COMPLETED)
            if action.done():
                key.cancel()
                return action.result()
            pressed = key.result()
            if run.on_key is not None and run.on_key(pressed):
                continue  # the step took it (a record's finishOnKey)
            if step.on_keypress_var:
                pressed_so_far = call.variables.get(step.on_keypress_var, "") + pressed
                call.variables[step.on_keypress_var] = pressed_so_far[-MAX_KEYPRESS_VAR:]
            if step.on_keypress_goto:
                log.info("call %s: key %s during step %s: on to %s", call.id, pressed, step.id, step.on_keypress_goto)
                return Goto(step.on_keypress_goto)
    finally:
        if not action.done():
            action.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await action


def _drain(keys: asyncio.Queue[str]) -> None:
    while not keys.empty():
        keys.get_nowait()
