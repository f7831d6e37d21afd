"""hardware/wiring.svg is what hardware/wiring.py draws from the settings' default pins today."""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path
from xml.etree import ElementTree

import schemdraw

from intercom.appliance.header import header_pin
from intercom.appliance.settings import PIN_FIELDS, Settings

HARDWARE = Path(__file__).resolve().parents[2] / "hardware"
DRAWING = HARDWARE / "wiring.svg"
README = HARDWARE / "README.md"
REGENERATE = "hardware/wiring.svg is out of date: run `python hardware/wiring.py` and commit the file"


def load_wiring():
    spec = importlib.util.spec_from_file_location("wiring", HARDWARE / "wiring.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def texts(svg: bytes) -> set[str]:
    """Every line of text in the drawing."""
    root = ElementTree.fromstring(svg)
    return {line.strip() for element in root.iter() if element.text for line in element.text.splitlines()} - {""}


def test_the_committed_drawing_is_what_the_code_draws(tmp_path):
    wiring = load_wiring()
    assert wiring.main(["wiring.py", str(tmp_path / "wiring.svg")]) == 0
    drawn, committed = (tmp_path / "wiring.svg").read_bytes(), DRAWING.read_bytes()
    drawn_with = re.search(rb"with schemdraw (\S+):", committed)
    assert drawn_with, REGENERATE
    if drawn_with[1].decode() == schemdraw.__version__:
        assert drawn == committed, REGENERATE
    else:  # another schemdraw may place things a hair apart: the words must still be the same
        assert texts(drawn) == texts(committed), f"{REGENERATE} (drawn with schemdraw {drawn_with[1].decode()})"


def test_every_fitted_part_is_labelled_with_its_gpio_and_header_pin():
    labels = texts(DRAWING.read_bytes())
    for field in PIN_FIELDS:
        gpio = Settings.model_fields[field].default
        if gpio is not None:
            assert f"GPIO{gpio}" in labels and f"pin {header_pin(gpio)}" in labels, field


def test_the_drawing_fits_each_part_to_the_units_the_pin_map_says():
    wiring = load_wiring()
    rows = re.findall(
        r"^\| [^|]+ \| `INTERCOM_(\w+)_PIN` \|[^|]+\|[^|]+\| *(\w*)[^|]*\| *(\w*)", README.read_text(), re.M
    )
    units = {f"{name.lower()}_pin": (door, desk) for name, door, desk in rows}
    assert set(wiring.FITTED) == set(units) == set(PIN_FIELDS)  # a new part needs its unit here and there
    for field, (door, desk) in units.items():
        fitted = {"yes yes": "both", "yes ": "door", " yes": "desk", "yes optional": "door"}[f"{door} {desk}"]
        assert wiring.FITTED[field] == fitted, field
        assert (wiring.OPTIONAL.get(field) == "desk") == (desk == "optional"), field
