"""Buttons and keypad keys: presses on the loop's thread, debounced, with long presses."""

from __future__ import annotations

import asyncio
import threading

import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance import PanelPins

from .conftest import MakePanel
from .helpers import FakeClock, Presses, drive, press, release

CALL = 17
ANSWER = 27


async def test_a_press_reaches_on_press_on_the_loops_thread(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    make_panel(PanelPins(buttons={"call": CALL, "answer": ANSWER}))
    await press(factory.pin(CALL))
    assert presses.events == [("press", "call")]
    assert presses.threads == [threading.current_thread()]


async def test_three_edges_in_12_ms_are_one_press_and_a_press_after_bounce_ms_counts(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    clock = FakeClock()
    make_panel(PanelPins(buttons={"call": CALL}, bounce_ms=30), clock=clock)
    pin = factory.pin(CALL)
    for _ in range(3):
        await press(pin)
        clock.advance(0.002)
        await release(pin)
        clock.advance(0.002)
    assert presses.events == [("press", "call")]
    clock.advance(0.030 - 0.012)
    await press(pin)
    assert presses.events == [("press", "call"), ("press", "call")]


async def test_a_bouncing_release_after_a_hold_is_not_a_press(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    clock = FakeClock()
    make_panel(PanelPins(buttons={"call": CALL}, bounce_ms=30), clock=clock)
    pin = factory.pin(CALL)
    await press(pin)
    clock.advance(0.5)
    await release(pin)
    clock.advance(0.003)
    await press(pin)
    clock.advance(0.003)
    await release(pin)
    assert presses.events == [("press", "call")]


async def test_each_button_debounces_on_its_own(make_panel: MakePanel, factory: MockFactory, presses: Presses) -> None:
    make_panel(PanelPins(buttons={"call": CALL, "answer": ANSWER}), clock=FakeClock())
    await press(factory.pin(CALL))
    await press(factory.pin(ANSWER))
    assert presses.events == [("press", "call"), ("press", "answer")]


async def test_a_held_button_fires_a_long_press_after_the_press_once(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    clock = FakeClock()
    make_panel(PanelPins(buttons={"call": CALL}, long_press_ms=1000), clock=clock)
    await press(factory.pin(CALL))
    clock.advance(0.999)
    assert presses.events == [("press", "call")]
    clock.advance(0.001)
    assert presses.events == [("press", "call"), ("long", "call")]
    clock.advance(5)
    assert presses.events == [("press", "call"), ("long", "call")]


async def test_a_short_press_is_not_a_long_one(make_panel: MakePanel, factory: MockFactory, presses: Presses) -> None:
    clock = FakeClock()
    make_panel(PanelPins(buttons={"call": CALL}, long_press_ms=1000), clock=clock)
    pin = factory.pin(CALL)
    await press(pin)
    clock.advance(0.2)
    await release(pin)
    clock.advance(5)
    assert presses.events == [("press", "call")]


async def test_a_long_press_is_timed_from_the_last_bounce(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    clock = FakeClock()
    make_panel(PanelPins(buttons={"call": CALL}, long_press_ms=1000), clock=clock)
    pin = factory.pin(CALL)
    await press(pin)
    clock.advance(0.005)
    await release(pin)
    clock.advance(0.005)
    await press(pin)
    clock.advance(0.99)
    assert presses.events == [("press", "call")]
    clock.advance(0.02)
    assert presses.events == [("press", "call"), ("long", "call")]


async def test_a_long_press_on_the_real_loop_clock(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    held = asyncio.Event()
    panel = make_panel(PanelPins(buttons={"call": CALL}, long_press_ms=50))
    panel.on_long_press = lambda name: (presses.on_long_press(name), held.set())
    start = asyncio.get_running_loop().time()
    await press(factory.pin(CALL))
    async with asyncio.timeout(5):
        await held.wait()
    assert asyncio.get_running_loop().time() - start >= 0.05
    assert presses.events == [("press", "call"), ("long", "call")]
    assert presses.threads == [threading.current_thread()] * 2


async def test_keypad_keys_report_their_digit(make_panel: MakePanel, factory: MockFactory, presses: Presses) -> None:
    make_panel(PanelPins(keypad={"5": 5, "#": 6, "0": 12}))
    for pin in (5, 6, 12):
        await press(factory.pin(pin))
    assert presses.events == [("press", "5"), ("press", "#"), ("press", "0")]


async def test_active_high_buttons_are_pulled_down_and_press_on_a_rising_edge(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    clock = FakeClock()
    make_panel(PanelPins(buttons={"answer": ANSWER}, buttons_active_low=False), clock=clock)
    pin = factory.pin(ANSWER)
    assert pin.pull == "down"
    await drive(pin, high=True)
    clock.advance(0.1)
    await drive(pin, high=False)
    assert presses.events == [("press", "answer")]


async def test_close_cancels_a_pending_long_press_and_ignores_queued_edges(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    clock = FakeClock()
    panel = make_panel(PanelPins(buttons={"call": CALL}), clock=clock)
    await press(factory.pin(CALL))
    panel.close()
    clock.advance(5)
    assert presses.events == [("press", "call")]


async def test_an_edge_queued_when_the_panel_closes_is_dropped(
    make_panel: MakePanel, factory: MockFactory, presses: Presses
) -> None:
    panel = make_panel(PanelPins(buttons={"call": CALL}))
    factory.pin(CALL).drive_low()  # on the loop's thread: the edge is queued, not yet handled
    panel.close()
    handled = asyncio.Event()
    asyncio.get_running_loop().call_soon(handled.set)
    async with asyncio.timeout(5):
        await handled.wait()
    assert presses.events == []


async def test_an_unknown_led_is_a_clear_key_error(make_panel: MakePanel) -> None:
    panel = make_panel(PanelPins(leds={"status": 25}))
    with pytest.raises(KeyError, match="this panel has no 'call' LED \\(it has: status\\)"):
        panel.led("call")
