"""``intercom simulate``: one door or desk unit in a terminal, its panel drawn and its buttons on keys.

The unit is the real thing (:class:`~.unit.Unit`: settings, panel, lights, controller and SDK
client) on gpiozero's mock pins, talking to a real hub. The lamps are drawn from the mock pins'
levels, read :data:`FRAME_RATE` times a second, rather than from the pattern names the controller
asks for: what is drawn is what a real panel's LEDs would do, blink threads and all.

A key press drives the button's mock pin low and then high, as a finger would. gpiozero calls a
mock pin's callbacks on the thread that drives it, and the panel only hands the edge on with
``call_soon_threadsafe``, so driving it from the event loop itself is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from collections.abc import Iterator, Mapping
from typing import ClassVar

from gpiozero.pins.mock import MockFactory, MockPin
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding, BindingType
from textual.color import Color
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget
from textual.widgets import Button, Footer, Log, Static

from ..media import MediaPolicy, RecordingSink, ToneSource
from ..sdk import AudioSettings, CallAudio, CallStatus, ClientStatus
from .controller import BUTTON_ACTIONS
from .settings import Settings
from .unit import Unit, mock_board

__all__ = ["BUTTON_KEYS", "Lamp", "Simulator", "run_simulator", "tone_audio"]

FRAME_RATE = 25  # lamp readings a second: the quickest pattern (fast_blink) changes every 0.1 s
HEARING_EVERY = 12  # frames between looks at what a test-tone call hears (an FFT each)
STOP_TIMEOUT = 15.0
BUTTON_KEYS: Mapping[str, str] = {"call": "c", "answer": "a", "reject": "r", "mute": "m", "unlock": "u"}
KEYPAD_KEY_NAMES: Mapping[str, str] = {"*": "asterisk", "#": "number_sign"}  # textual's names; digits are digits
KEYPAD_IDS: Mapping[str, str] = {"*": "star", "#": "hash"}  # widget ids take neither
KEYPAD_ORDER = "123456789*0#"  # a phone's
LAMP_COLOURS: Mapping[str, str] = {"status": "#3ddc5a", "call": "#ffb000", "mute": "#ff4040"}
DARK = Color.parse("#303030")
TONES: Mapping[str, float] = {"door": 440.0, "desk": 880.0}  # as in the demo: each side knows the other's


def tone_audio(role: str, policy: MediaPolicy | None = None) -> CallAudio:
    """Sound without a sound card: the unit sends a steady tone and keeps what it hears to measure."""
    return CallAudio(
        source=lambda: ToneSource(TONES[role]), sink=RecordingSink, policy=policy or MediaPolicy(), tones=None
    )


class Lamp(Widget):
    """One LED, drawn at its pin's brightness (0 to 1; a plain LED is either), with its pattern's name."""

    DEFAULT_CSS = "Lamp { width: auto; height: 1; margin-right: 3; }"

    level: reactive[float] = reactive(0.0)
    pattern: reactive[str] = reactive("", layout=True)  # a longer name needs a wider lamp

    def __init__(self, led: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.led = led
        self._colour = Color.parse(LAMP_COLOURS.get(led, "#ffffff"))
        self.history: deque[tuple[float, float]] = deque(maxlen=64)  # (monotonic time, level) as drawn

    def watch_level(self, level: float) -> None:
        self.history.append((time.monotonic(), level))

    def render(self) -> Text:
        colour = DARK.blend(self._colour, self.level)
        return Text.assemble(("●", f"bold {colour.hex}"), f" {self.led}", (f" {self.pattern}", "dim"))


class Simulator(App[None]):
    """A unit's panel in the terminal. ``board`` is the mock pin factory the unit was built on.

    The app connects the unit when it starts and stops it (hang up, un-register, release the pins)
    when it quits. :attr:`changed` is set whenever what is shown changes, so that a test can wait
    for the screen instead of sleeping.
    """

    TITLE = "intercom simulator"
    CSS = """
    #unit { text-style: bold; }
    #lamps, #buttons, #keypad { height: auto; margin: 1 0 0 0; }
    #relay, #call { margin: 1 0 0 0; }
    Button { margin-right: 1; }
    Button.idle { text-style: dim; }
    #log { margin: 1 0 0 0; border: round $primary-darken-2; }
    """
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit", "quit"),
        *(Binding(key, f"press('{button}')", button.upper()) for button, key in BUTTON_KEYS.items()),
        *(Binding(KEYPAD_KEY_NAMES.get(key, key), f"press('{key}')", key, show=False) for key in "0123456789*#"),
    ]

    def __init__(self, unit: Unit, board: MockFactory) -> None:
        super().__init__()
        self.unit = unit
        self.board = board
        self.changed = asyncio.Event()
        self.stopped = False
        pins = unit.panel.pins
        self._pins = {**pins.buttons, **pins.keypad}
        self._lamps = {led: Lamp(led, id=f"lamp-{led}") for led in pins.leds}
        self._lines = {line: Static(id=line, markup=False) for line in ("unit", "client", "relay", "call")}
        self._log = Log(max_lines=500, id="log")
        self._stopping = False
        self._stop_lock = asyncio.Lock()
        self._frames = 0
        self._followed: object = None  # the call, and the offered call, whose news is in the log
        self._offered: object = None
        self._hearing = ""

    # -- the screen ----------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        settings, pins = self.unit.settings, self.unit.panel.pins
        hub = settings.hub_url if self.unit.hub is None else f"here, on {settings.hub_listen} port {self.unit.hub.port}"
        self._show("unit", f"{settings.role} unit {settings.identity!r} · hub {hub}")
        self._show("relay", "door strike: not fitted" if pins.relay is None else "door strike: released")
        self._show("call", "no call")
        yield self._lines["unit"]
        yield self._lines["client"]
        with Horizontal(id="lamps"):
            yield from self._lamps.values()
        yield self._lines["relay"]
        with Horizontal(id="buttons"):
            for button in pins.buttons:
                label = Content(f"{button.upper()} [{BUTTON_KEYS[button]}]")
                idle = None if (settings.role, button) in BUTTON_ACTIONS else "idle"  # fitted, but no use here
                yield Button(label, id=f"button-{button}", classes=idle, action=f"app.press('{button}')", compact=True)
        if pins.keypad:
            with Horizontal(id="keypad"):
                for key in sorted(pins.keypad, key=KEYPAD_ORDER.index):
                    name = KEYPAD_IDS.get(key, key)
                    yield Button(Content(key), id=f"key-{name}", action=f"app.press('{key}')", compact=True)
        yield self._lines["call"]
        yield self._log
        yield Footer()

    def lamp(self, led: str) -> Lamp:
        return self._lamps[led]

    def text(self, line: str) -> str:
        """What a line of the screen says: ``unit``, ``client``, ``relay`` or ``call``."""
        return str(self._lines[line].content)

    def log_lines(self) -> list[str]:
        return list(self._log.lines)

    def note(self, line: str) -> None:
        """Add a line to the event log, stamped with the time (queued: callable from any task of the loop)."""
        self.call_later(self._write, f"{time.strftime('%H:%M:%S')} {line}")

    def _write(self, line: str) -> None:
        self._log.write_line(line)
        self.changed.set()

    def _show(self, line: str, text: str) -> None:
        if text != self.text(line):
            self._lines[line].update(text)
            self.changed.set()

    # -- the unit ------------------------------------------------------------------------------

    # The unit's and the client's callbacks run on the loop but outside the app's context, and also
    # after the app has closed, while the unit stops: each is queued to the app as a message, which
    # the app runs in its context, or drops once it has closed.

    def on_mount(self) -> None:
        client = self.unit.client
        for led, pattern in self.unit.patterns.items():
            self._lamps[led].pattern = pattern
        self.unit.watchers.append(lambda *shown: self.call_later(self._watch, *shown))
        client.on("status", lambda status: self.call_later(self._client_status, status))
        client.on("error", lambda error: self.note(f"hub error {error.code}: {error.message}"))
        self._client_status(client.status)
        self.set_interval(1 / FRAME_RATE, self._frame, name="lamps")
        self.unit.connect()  # and keeps connecting, a refusal tried again every minute, as on a Pi

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys of buttons this unit has: a key for a missing button shows nothing and does nothing."""
        if action == "press":
            return parameters[0] in self._pins
        return True

    def action_press(self, button: str) -> None:
        pin = self.board.pin(self._pins[button])
        pin.drive_low()
        pin.drive_high()
        self.note(f"{button.upper()} pressed")

    async def action_quit(self) -> None:
        await self.stop_unit()
        self.exit()

    async def stop_unit(self) -> None:
        """Hang up, un-register and release the pins; the relay is switched off first. Twice is harmless."""
        async with self._stop_lock:
            if self.stopped:
                return
            self._stopping = True  # no more frames: the pins are about to close
            async with asyncio.timeout(STOP_TIMEOUT):
                await self.unit.stop()
            self.stopped = True
            self.changed.set()

    def _watch(self, kind: str, name: str, value: object) -> None:
        if kind == "light":
            if self._lamps[name].pattern == value:  # a call accepted, then confirmed: the light stays on
                return
            self._lamps[name].pattern = str(value)
            self.note(f"light {name}: {value}")
        elif kind == "relay":
            self.note(f"relay: {name} energised for {value} s")

    def _client_status(self, status: ClientStatus) -> None:
        self._show("client", f"hub: {status.value}")
        self.note(f"status {status.value}")

    def _frame(self) -> None:
        """Read the pins and the controller; redraw only what changed."""
        if self._stopping:
            return
        pins = self.unit.panel.pins
        for led, number in pins.leds.items():
            level = _level(self.board.pin(number), active_low=pins.leds_active_low)
            if level != self._lamps[led].level:
                self._lamps[led].level = level
                self.changed.set()
        if pins.relay is not None:
            energised = _level(self.board.pin(pins.relay), active_low=pins.relay_active_low) > 0
            self._show("relay", f"door strike: {'energised' if energised else 'released'}")
        self._frames += 1
        if self._frames % HEARING_EVERY == 0:
            self._hearing = self._heard()
        self._follow_call()
        self._show("call", self._call_text())

    def _follow_call(self) -> None:
        """Log a new call's statuses as they come (the screen shows only the latest)."""
        offered = self.unit.controller.offered
        if offered is not None and offered is not self._offered:
            self._offered = offered
            self.note(f"incoming call from {offered.display_name or 'someone'}")
        call = self.unit.controller.call
        if call is not None and call is not self._followed:
            self._followed = call
            self.note(f"call {call.status.value if call.status else 'starting'}")
            call.on("status", lambda status: self.note(f"call {status.value}"))

    def _call_text(self) -> str:
        controller = self.unit.controller
        if controller.offered is not None:
            return f"incoming call from {controller.offered.display_name or 'someone'}: ringing"
        call = controller.call
        if call is None or call.status is None:
            return "no call" if call is None else "call starting"
        muted = ", muted" if call.is_muted else ""
        hearing = f", hearing {self._hearing}" if self._hearing and call.status is CallStatus.CONFIRMED else ""
        return f"call {call.status.value}{muted}{hearing}"

    def _heard(self) -> str:
        call = self.unit.controller.call
        sink = call.sink if call is not None else None
        if not isinstance(sink, RecordingSink):
            return ""
        frequency = sink.dominant_frequency(0.3)
        return "" if frequency is None else f"{frequency:.0f} Hz"


def _level(pin: MockPin, *, active_low: bool) -> float:
    """How bright an LED on ``pin`` is (or whether a relay is energised), whichever way it is wired."""
    state = float(pin.state)
    return 1.0 - state if active_low else state


@contextlib.contextmanager
def _logs_into(app: Simulator) -> Iterator[None]:
    """Log records go to the app's event log, not to a terminal the app is drawing on."""
    root = logging.getLogger()
    handler = _AppLogHandler(app, asyncio.get_running_loop())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(lambda record: record.name.startswith("intercom") or record.levelno >= logging.WARNING)
    saved, root.handlers = root.handlers, [handler]
    try:
        yield
    finally:
        root.handlers = saved


class _AppLogHandler(logging.Handler):
    def __init__(self, app: Simulator, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._app = app
        self._loop = loop

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
            self._loop.call_soon_threadsafe(self._app.note, line)  # records come from gpiozero's threads too
        except RuntimeError:  # the loop has closed: nobody is looking any more
            pass
        except Exception:
            self.handleError(record)


async def run_simulator(settings: Settings, audio: AudioSettings | CallAudio) -> None:
    """Run the unit ``settings`` describe on mock pins, in this terminal, until the user quits."""
    board = mock_board(settings)  # never the real pins
    try:
        unit = Unit(settings, audio, pin_factory=board)
    except BaseException:
        board.close()
        raise
    try:
        await unit.start_hub()  # a desk that hosts the hub (its HubStartError is one line, exit 2)
    except BaseException:
        await unit.stop()
        board.close()
        raise
    app = Simulator(unit, board)
    try:
        with _logs_into(app):
            await app.run_async()
    finally:
        await app.stop_unit()  # however the app ended
        board.close()
