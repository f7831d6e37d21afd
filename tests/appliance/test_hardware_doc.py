"""hardware/README.md's pin map is the settings' defaults: the document and the code cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from intercom.appliance.header import A_40_PIN_PI, header_pin, header_pins
from intercom.appliance.settings import BCM_PINS, PIN_FIELDS, Settings

DOC = Path(__file__).resolve().parents[2] / "hardware" / "README.md"


def test_the_pin_map_table_is_the_settings_defaults():
    rows = re.findall(r"^\| [^|]+ \| `INTERCOM_(\w+)_PIN` \| (\d+) \| (\d+) \|", DOC.read_text(), re.MULTILINE)
    documented = {f"{name.lower()}_pin": (int(bcm), int(header)) for name, bcm, header in rows}
    assert set(documented) == set(PIN_FIELDS)  # every part, once
    for field, (bcm, header) in documented.items():
        assert Settings.model_fields[field].default == bcm, field
        assert header_pin(bcm) == header, field  # the header pin is right for that GPIO


def test_header_pins_as_every_pi_with_a_40_pin_header_has_them():
    assert [header_pin(gpio) for gpio in (2, 17, 26, 27)] == [3, 11, 37, 13]  # a few, from the Pi's own pinout
    assert header_pins("GND") == (6, 9, 14, 20, 25, 30, 34, 39) and header_pins("5V") == (2, 4)


@pytest.mark.parametrize("revision", ["c03112", "d04170", "902120"], ids=["Pi 4B", "Pi 5", "Zero 2 W"])
def test_other_pis_have_the_same_header(revision):
    for gpio in BCM_PINS:
        assert header_pin(gpio, revision) == header_pin(gpio, A_40_PIN_PI), gpio
    assert header_pins("GND", revision) == header_pins("GND")
