"""Where a BCM GPIO is on the Raspberry Pi's 40-pin header (J8), as gpiozero's own board data says.

The pin map in ``hardware/README.md`` and the wiring drawing (``hardware/wiring.py``) give both
numbers: the BCM one the settings take, and the header pin a wire goes on. Asking gpiozero keeps
them right without a table of ours to get wrong. Every 40-pin Pi (3B+, 4, 5, Zero 2 W) has the same
J8, so one board stands for them all (``tests/appliance/test_hardware_doc.py`` checks they agree).
"""

from __future__ import annotations

from functools import cache

from gpiozero import pi_info
from gpiozero.pins import BoardInfo

A_40_PIN_PI = "a020d3"  # the revision code of a Raspberry Pi 3B+


@cache
def _board(revision: str) -> BoardInfo:
    return pi_info(revision)


def header_pins(name: str, revision: str = A_40_PIN_PI) -> tuple[int, ...]:
    """Every J8 pin called ``name`` (``"GPIO17"``, ``"GND"``, ``"5V"``, ``"3V3"``), lowest first."""
    return tuple(sorted(pin.number for header, pin in _board(revision).find_pin(name) if header.name == "J8"))


def header_pin(gpio: int, revision: str = A_40_PIN_PI) -> int:
    """The header pin (1-40) that BCM GPIO ``gpio`` is on."""
    (number,) = header_pins(f"GPIO{gpio}", revision)
    return number
