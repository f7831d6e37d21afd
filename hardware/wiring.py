#!/usr/bin/env python3
"""Draws ``hardware/wiring.svg``, the wiring of a unit, from the settings' default pins.

Run ``python hardware/wiring.py`` after changing a pin's default in
``intercom/appliance/settings.py``: ``tests/appliance/test_wiring.py`` fails while the committed
drawing and the settings disagree. The parts, their names and their GPIOs come from the settings,
the header pins from gpiozero's board data (:mod:`intercom.appliance.header`).

schemdraw's own SVG backend keeps text as text, so the labels can be searched; numbers are
rounded to a hundredth of a point, so a run writes the same bytes on any machine with the same
schemdraw (whose version the file records).
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path

import schemdraw
import schemdraw.elements as elm
from schemdraw.util import Point

from intercom.appliance.header import header_pin, header_pins
from intercom.appliance.settings import PIN_FIELDS, Settings

OUTPUT = Path(__file__).resolve().with_name("wiring.svg")
COLORS = {"door": "#1f5fbf", "desk": "#2e7d32", "both": "black"}  # door-only parts blue, desk-only green
ROW = 1.5  # drawing units between two parts' rows
SMALL = 9  # font size of values and notes
FITTED = {  # which unit has the part (as hardware/README.md's pin map says)
    "button_call_pin": "door",
    "button_answer_pin": "desk",
    "button_reject_pin": "desk",
    "button_mute_pin": "desk",
    "button_unlock_pin": "desk",
    "led_status_pin": "both",
    "led_call_pin": "both",
    "led_mute_pin": "desk",
    "relay_pin": "door",
}
OPTIONAL = {"button_call_pin": "desk"}  # also fitted on that unit, when wanted (the desk's CALL calls the door)
NUMBER = re.compile(r"-?\d+\.\d+(?:e-?\d+)?")
ATTRIBUTE = re.compile(r'="([^"]*)"')


@dataclass(frozen=True)
class Part:
    field: str  # its setting, e.g. button_call_pin
    name: str  # from the setting's description: "CALL button"
    gpio: int
    header: int

    @property
    def color(self) -> str:
        return COLORS[FITTED[self.field]]

    @property
    def tag(self) -> str:
        unit = FITTED[self.field].replace("both", "door + desk")
        optional = f" ({OPTIONAL[self.field]}: optional)" if self.field in OPTIONAL else ""
        return f"{self.name}: {unit}{optional}"


def parts() -> list[Part]:
    """The fitted parts at their default pins, in header order (top to bottom on the drawing)."""
    found = []
    for field in PIN_FIELDS:
        info = Settings.model_fields[field]
        if info.default is not None:
            name = re.split(r" \(|:", info.description or field)[0]
            found.append(Part(field, name, info.default, header_pin(info.default)))
    return sorted(found, key=lambda part: part.header)


def svg() -> bytes:
    """The drawing as the bytes of ``hardware/wiring.svg``."""
    body = draw().get_imagedata("svg").decode()
    note = f"<!-- drawn by hardware/wiring.py with schemdraw {schemdraw.__version__}: run it again, do not edit -->\n"
    return (note + ATTRIBUTE.sub(lambda match: '="' + NUMBER.sub(_rounded, match[1]) + '"', body) + "\n").encode()


def _rounded(match: re.Match[str]) -> str:
    value = round(float(match[0]), 2)
    return f"{value:.2f}".rstrip("0").rstrip(".") if value else "0"  # never "-0"


def draw() -> schemdraw.Drawing:
    """The whole drawing: the header and its parts, the door strike's circuit, the sound."""
    schemdraw.use("svg")
    schemdraw.svgconfig.text = "text"  # not paths: searchable, and no fonts involved
    drawing = schemdraw.Drawing(show=False)
    drawing.config(fontsize=11, unit=2, margin=0.8, bgcolor="white")  # white: legible in dark mode too
    wired = parts()
    five_volt, ground = header_pins("5V"), header_pins("GND")
    pins = [
        elm.IcPin(name=f"GPIO{part.gpio}", pin=f"pin {part.header}", side="right", anchorname=part.field)
        for part in wired
    ]
    pins.append(elm.IcPin(name="5V", pin=f"pin {five_volt[0]}", side="top", anchorname="v5"))
    pins.append(elm.IcPin(name="GND", pin=f"pin {ground[-1]}", side="bottom", anchorname="gnd"))
    pi = elm.Ic(pins=pins[::-1], pinspacing=ROW, edgepadH=0.6, edgepadW=3.4, leadlen=1.2, plblsize=10, lblsize=12)
    drawing += pi.label("Raspberry Pi\n40-pin header (J8)", loc="center", ofst=(-1.1, 0))
    drawing += elm.Vdd().at(pi.v5).label(f"5 V (pin {' or '.join(map(str, five_volt))})")
    drawing += elm.Ground().at(pi.gnd)
    drawing += elm.Label().at(Point(pi.gnd) + Point((0, -1.2))).label(f"GND: any of pins {', '.join(map(str, ground))}")
    top = Point(getattr(pi, wired[0].field))
    _legend(drawing, top + Point((0.8, 2.6)))
    for part in wired:
        pin = Point(getattr(pi, part.field))
        if part.field.startswith("button_"):
            _button(drawing, pin, part)
        elif part.field.startswith("led_"):
            _led(drawing, pin, part)
        else:
            _door_strike(drawing, pin, Point(pi.gnd).y - 4.5, part)
    _sound(drawing, Point((Point(pi.gnd).x - 2, Point(pi.gnd).y - 11.8)))
    return drawing


def _legend(drawing: schemdraw.Drawing, at: Point) -> None:
    title = "Wiring of an intercom unit: pins are the settings' defaults"
    drawing += elm.Label().at(at).label(title, halign="left", fontsize=13)
    for column, (unit, text) in enumerate({"door": "door only", "desk": "desk only", "both": "both units"}.items()):
        drawing += elm.Label().at(at + Point((1.9 * column, -0.55))).label(text, color=COLORS[unit], halign="left")
    drawing += (
        elm.Label()
        .at(at + Point((0, -1.1)))
        .label(
            "Buttons switch to GND: the Pi's internal pull-ups hold them high, no resistor needed.\n"
            "LEDs: 330 Ω in series, about 4 mA; the LED's long leg (anode) towards the GPIO.\n"
            "Keypad keys (optional) are wired like the buttons, on free GPIOs: INTERCOM_KEYPAD_PINS.",
            halign="left",
            valign="top",
            fontsize=SMALL,
        )
    )


def _tag(drawing: schemdraw.Drawing, pin: Point, part: Part) -> None:
    drawing += elm.Label().at(pin + Point((7.0, 0))).label(part.tag, color=part.color, halign="left")


def _button(drawing: schemdraw.Drawing, pin: Point, part: Part) -> None:
    with drawing.hold():
        drawing += elm.Line().at(pin).right(2).color(part.color)
        drawing += elm.Button().right(1.5).color(part.color)
        drawing += elm.Line().right(2.5).color(part.color)
        drawing += elm.Ground().color(part.color)
    _tag(drawing, pin, part)


def _led(drawing: schemdraw.Drawing, pin: Point, part: Part) -> None:
    with drawing.hold():
        drawing += elm.Line().at(pin).right(0.5).color(part.color)
        drawing += elm.Resistor().right(2).label("330 Ω", fontsize=SMALL).color(part.color)
        drawing += elm.LED().right(1.5).color(part.color)
        drawing += elm.Line().right(2).color(part.color)
        drawing += elm.Ground().color(part.color)
    _tag(drawing, pin, part)


def _door_strike(drawing: schemdraw.Drawing, pin: Point, y: float, part: Part) -> None:
    """The relay's GPIO through a base resistor to an NPN that pulls the relay's coil to ground; the
    relay's normally-open contact closes the strike's own circuit."""
    color = part.color
    _tag(drawing, pin, part)
    with drawing.hold():
        drawing += elm.Line().at(pin).right(0.8).color(color)
        drawing += elm.Line().down(pin.y - y).color(color)
        drawing += (resistor := elm.Resistor().right(2.5).label("1 kΩ", fontsize=SMALL).color(color))
        drawing += (
            npn := elm.BjtNpn(circle=True).anchor("base").label("BC337", loc="right", fontsize=SMALL).color(color)
        )
        drawing += elm.Line().at(npn.emitter).down(0.3).color(color)
        drawing += (emitter := elm.Ground().color(color))
        drawing += elm.Line().at(npn.collector).up(0.8).color(color)
        bottom = Point(drawing.here)
        drawing += (coil := elm.Inductor2().up(2).color(color))
        drawing += elm.Line().up(0.5).color(color)
        drawing += elm.Vdd().label("5 V").color(color)
        top = Point(coil.end)
        drawing += elm.Line().at(bottom).left(1.3).color(color)
        drawing += (diode := elm.Diode().up(2).label("1N4001", loc="top", fontsize=SMALL).color(color))
        drawing += elm.Line().tox(top).color(color)
        drawing += elm.Dot().at(top).color(color)
        drawing += elm.Dot().at(bottom).color(color)
        switch_x = bottom.x + 2.2
        drawing += elm.Line(ls=":").at(Point((bottom.x + 0.5, bottom.y + 1))).tox(switch_x - 0.2).color(color)
        drawing += (contact := elm.Switch().at(Point((switch_x, top.y))).down(2).color(color))
        drawing += (
            elm.Label()
            .at(Point(contact.start) + Point((-0.2, 0)))
            .label("COM", fontsize=SMALL, color=color, halign="right")
        )
        drawing += (
            elm.Label()
            .at(Point(contact.end) + Point((-0.2, 0)))
            .label("NO", fontsize=SMALL, color=color, halign="right")
        )
        box = elm.EncircleBox([resistor, npn, emitter, coil, diode, contact], padx=0.4, pady=0.4, ls="--").color(color)
        drawing += box
        drawing += (
            elm.Label()
            .at(Point(box.SW) + Point((0, -0.7)))
            .label(
                f"5 V relay, contacts rated for the strike. A 1-channel relay module has this whole box on\n"
                f"board: its IN to GPIO{part.gpio}, VCC to 5 V, GND to GND (many switch on a low IN:\n"
                f"INTERCOM_RELAY_ACTIVE_LOW=true).",
                halign="left",
                valign="top",
                fontsize=SMALL,
                color=color,
            )
        )
        # the strike's own circuit: COM -> its supply -> the strike -> NO
        drawing += elm.Line().at(contact.start).up(1).color(color)
        drawing += elm.Line().right(3).color(color)
        drawing += (
            elm.SourceV()
            .down(2)
            .reverse()
            .label("strike supply\n12 V (AC or DC)", loc="bottom", fontsize=SMALL)
            .color(color)
        )
        drawing += (
            elm.Inductor2()
            .down(2)
            .label("electric door strike\n(DC: a diode\nacross it too)", loc="bottom", fontsize=SMALL)
            .color(color)
        )
        drawing += elm.Line().down(0.5).color(color)
        drawing += elm.Line().tox(contact.end).color(color)
        drawing += elm.Line().toy(contact.end).color(color)


def _sound(drawing: schemdraw.Drawing, at: Point) -> None:
    """The USB sound card with its microphone, and the amplifier and speaker on its output."""
    card = elm.Ic(
        pins=[
            elm.IcPin(name="USB", side="left", anchorname="usb"),
            elm.IcPin(name="mic in", side="right", slot="2/2", anchorname="mic"),
            elm.IcPin(name="out", side="right", slot="1/2", anchorname="out"),
        ],
        pinspacing=1.5,
        edgepadW=1.5,
        leadlen=0.8,
        plblsize=10,
    )
    drawing += card.at(at).label("USB sound card (both units)", loc="top")
    drawing += elm.Line().at(card.usb).left(0.8)
    drawing += (
        elm.Label()
        .at(Point(card.usb) + Point((-1.0, 0)))
        .label("to a USB port\nof the Pi", halign="right", fontsize=SMALL)
    )
    drawing += elm.Line().at(card.mic).right(1.5)
    drawing += (mic := elm.Mic().left().flip().anchor("in1").label("electret mic", loc="top", fontsize=SMALL))
    drawing += elm.Line().at(mic.in2).left(0.3)
    drawing += elm.Ground()
    amp = elm.Ic(
        pins=[
            elm.IcPin(name="A+", side="left", slot="2/2", anchorname="a_plus"),
            elm.IcPin(name="A-", side="left", slot="1/2", anchorname="a_minus"),
            elm.IcPin(name="VIN", side="top", anchorname="vin"),
            elm.IcPin(name="GND", side="bottom", anchorname="gnd"),
            elm.IcPin(name="+", side="right", slot="2/2", anchorname="plus"),
            elm.IcPin(name="-", side="right", slot="1/2", anchorname="minus"),
        ],
        pinspacing=1.0,
        edgepadW=1.2,
        leadlen=0.6,
        plblsize=10,
    )
    drawing += elm.Line().at(card.out).right(2.5)
    drawing += amp.anchor("a_plus")
    drawing += (
        elm.Label()
        .at(Point(amp.gnd) + Point((-0.5, -0.8)))
        .label("class-D amplifier\n(PAM8302, 2.5 W)", halign="right", fontsize=SMALL)
    )
    drawing += elm.Line().at(amp.a_minus).left(0.5)
    drawing += elm.Ground()
    drawing += elm.Vdd().at(amp.vin).label("5 V")
    drawing += elm.Ground().at(amp.gnd)
    drawing += elm.Line().at(amp.plus).right(0.6)
    drawing += (
        speaker := elm.Speaker().anchor("in1").right().label("speaker\n4-8 Ω, 1-3 W", loc="right", fontsize=SMALL)
    )
    drawing += elm.Line().at(amp.minus).tox(Point(speaker.in2).x - 0.3)
    drawing += elm.Line().toy(speaker.in2)
    drawing += elm.Line().tox(speaker.in2)


def main(argv: list[str]) -> int:
    output = Path(argv[1]) if len(argv) > 1 else OUTPUT
    output.write_bytes(svg())
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
