"""PanelPins refuses wiring that cannot work before any device is opened."""

from __future__ import annotations

import pytest

from intercom.appliance import PanelPins


def test_a_pin_used_twice_is_refused_naming_both_uses() -> None:
    with pytest.raises(ValueError, match=r"^GPIO17 is used twice: by button 'call' and by LED 'status'$"):
        PanelPins(buttons={"call": 17}, leds={"status": 17})


def test_the_relay_on_a_keypad_pin_is_refused() -> None:
    with pytest.raises(ValueError, match=r"^GPIO5 is used twice: by keypad key '1' and by the relay$"):
        PanelPins(keypad={"1": 5}, relay=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"buttons": {"hangup": 17}}, r"unknown button 'hangup': expected one of answer, call, mute, reject, unlock"),
        ({"keypad": {"A": 17}}, r"unknown keypad key 'A'"),
        ({"leds": {"power": 17}}, r"unknown LED 'power': expected one of call, mute, status"),
        ({"bounce_ms": -1}, r"bounce_ms must be 0 or more"),
        ({"long_press_ms": 0}, r"long_press_ms must be more than 0"),
    ],
)
def test_unknown_names_and_bad_times_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        PanelPins(**kwargs)  # type: ignore[arg-type]


def test_a_full_panel_is_accepted() -> None:
    pins = PanelPins(
        buttons={"call": 17, "answer": 27, "reject": 22, "mute": 23, "unlock": 24},
        keypad={str(digit): 4 + digit for digit in range(10)},
        leds={"status": 25, "call": 26, "mute": 16},
        relay=20,
    )
    assert pins.relay == 20
