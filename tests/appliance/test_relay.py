"""The door-strike relay: one pulse at a time, for its length, and off when the panel closes."""

from __future__ import annotations

import pytest
from gpiozero.pins.mock import MockFactory

from intercom.appliance import PanelPins

from .conftest import MakePanel
from .helpers import WatchedPin, assert_history, history

RELAY = 20


async def test_a_pulse_energises_the_relay_once_for_its_length_and_overlaps_are_ignored(
    make_panel: MakePanel, factory: MockFactory
) -> None:
    panel = make_panel(PanelPins(relay=RELAY))
    pin = factory.pin(RELAY)
    pin.clear_states()
    assert panel.pulse_relay(0.3)
    assert not panel.pulse_relay(0.3)
    assert_history(await history(pin, 3), [(0.0, False), (0.0, True), (0.3, False)])
    assert len(pin.states) == 3
    assert panel.pulse_relay(0.1)
    assert_history((await history(pin, 5))[3:], [(0.0, True), (0.1, False)])


async def test_an_active_low_relay_pulls_its_pin_low(make_panel: MakePanel, factory: MockFactory) -> None:
    panel = make_panel(PanelPins(relay=RELAY, relay_active_low=True))
    pin = factory.pin(RELAY)
    assert pin.state
    pin.clear_states()
    panel.pulse_relay(0.1)
    assert_history(await history(pin, 3), [(0.0, True), (0.0, False), (0.1, True)])


@pytest.mark.parametrize("active_low", [False, True])
async def test_close_during_a_pulse_leaves_the_relay_off(
    make_panel: MakePanel, factory: MockFactory, active_low: bool
) -> None:
    panel = make_panel(PanelPins(relay=RELAY, relay_active_low=active_low))
    pin: WatchedPin = factory.pin(RELAY)
    pin.clear_states()
    panel.pulse_relay(60)
    await history(pin, 2)
    panel.close()
    assert [s.state for s in pin.states] == [active_low, not active_low, active_low]


async def test_a_panel_without_a_relay_says_so(make_panel: MakePanel) -> None:
    panel = make_panel(PanelPins())
    with pytest.raises(RuntimeError, match="this panel has no relay"):
        panel.pulse_relay(1)
