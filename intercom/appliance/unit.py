"""One door or desk unit, put together from its settings: SDK client, panel, lights and controller.

This is what ``intercom appliance`` runs. The client mints its own tokens (:mod:`.tokens`), takes
its sound from the settings, and reconnects by itself; the controller is created before the
client connects, so the status light follows it from the first ``connecting``.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Callable
from urllib.parse import urlsplit

from gpiozero import Factory

from ..sdk import AudioSettings, CallAudio, Client
from .controller import Controller
from .lights import Lights
from .panel import Panel, PanelPins
from .settings import Settings
from .tokens import token_minter

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 30.0  # the first registration; after that the client keeps reconnecting on its own


def panel_pins(settings: Settings) -> PanelPins:
    """The panel the settings describe: every part with a pin, named as the controller knows it."""
    fitted = settings.pins()

    def named(kind: str) -> dict[str, int]:  # button_call_pin -> call, led_status_pin -> status
        parts = {name: pin for name, pin in fitted.items() if name.startswith(kind)}
        return {name.removeprefix(kind).removesuffix("_pin"): pin for name, pin in parts.items()}

    return PanelPins(
        buttons=named("button_"),
        keypad=dict(settings.keypad_pins),
        leds=named("led_"),
        pwm_leds=settings.pwm_leds,
        relay=settings.relay_pin,
        buttons_active_low=settings.buttons_active_low,
        leds_active_low=settings.leds_active_low,
        relay_active_low=settings.relay_active_low,
        bounce_ms=settings.bounce_ms,
        long_press_ms=settings.long_press_ms,
    )


def hub_address(settings: Settings) -> tuple[str, bool]:
    """``host:port`` and whether it is TLS, from ``INTERCOM_HUB_URL`` (or the embedded hub's port)."""
    if settings.hub_url is None:
        return f"127.0.0.1:{settings.hub_port}", False
    parts = urlsplit(settings.hub_url)
    secure = parts.scheme == "wss"
    return f"{parts.hostname}:{parts.port or (443 if secure else 80)}", secure


class Unit:
    def __init__(
        self,
        settings: Settings,
        audio: AudioSettings | CallAudio,
        *,
        pin_factory: Factory | None = None,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.settings = settings
        self.watchers: list[Callable[[str, str, object], None]] = []  # (kind, name, value): the demo, a simulator
        self.patterns: dict[str, str] = {}  # each fitted light's pattern now, for a watcher that comes late
        host, secure = hub_address(settings)
        self._mint = token_minter(settings)
        call_audio = audio.call_audio() if isinstance(audio, AudioSettings) else audio
        self.client = Client(
            host=host, refresh_token=self._mint, secure=secure, ssl_context=ssl_context, audio=call_audio
        )
        loop = asyncio.get_running_loop()
        self.panel = Panel(panel_pins(settings), loop, on_press=self._pressed, pin_factory=pin_factory)
        self.lights = Lights(self.panel)
        self.controller = Controller(
            settings.role,
            self.client,
            self._show,
            self._pulse_relay,
            unlock_code=settings.unlock_code.get_secret_value(),
            relay_pulse_s=settings.relay_pulse_s,
            auto_answer=settings.auto_answer,
            call_button_hangs_up=settings.call_button_hangs_up,
            ring_timeout_s=settings.ring_timeout_s,
        )

    def mint_token(self) -> str:
        return self._mint()

    async def start(self) -> None:
        """Connect to the hub (raises the SDK's error if it refuses this unit's key or identity)."""
        async with asyncio.timeout(SETUP_TIMEOUT):
            await self.client.setup(jwt=self._mint())

    async def stop(self) -> None:
        await self.client.destroy()
        self.controller.close()
        self.panel.close()  # the relay de-energised first

    def _pressed(self, button: str) -> None:
        self.controller.press(button)

    def _show(self, led: str, pattern: str) -> None:
        if led in self.panel.pins.leds:  # a light this unit does not have shows nothing
            self.lights.show(led, pattern)
            self.patterns[led] = pattern
            self._tell("light", led, pattern)

    def _pulse_relay(self, seconds: float) -> None:
        if self.panel.pins.relay is None:
            log.warning("the unlock code was right, but this unit has no relay (INTERCOM_RELAY_PIN)")
            return
        if self.panel.pulse_relay(seconds):
            self._tell("relay", "door strike", seconds)

    def _tell(self, kind: str, name: str, value: object) -> None:
        for watcher in self.watchers:
            watcher(kind, name, value)
