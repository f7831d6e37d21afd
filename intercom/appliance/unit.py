"""One door or desk unit, put together from its settings: SDK client, panel, lights and controller.

This is what ``intercom appliance`` runs. The client mints its own tokens (:mod:`.tokens`), takes
its sound from the settings, and reconnects by itself; the controller is created before the
client connects, so the status light follows it from the first ``connecting``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from gpiozero import Factory
from gpiozero.pins.mock import MockFactory, MockPin, MockPWMPin

from ..sdk import AudioSettings, CallAudio, CertificateError, Client, ClientError
from .controller import Controller
from .lights import Lights
from .panel import Panel, PanelPins
from .settings import Settings, SettingsError
from .tokens import token_minter
from .unlock_store import StateDirError, UnlockStore

if TYPE_CHECKING:
    from .embedded_hub import EmbeddedHub

log = logging.getLogger(__name__)

SETUP_TIMEOUT = 30.0  # the first registration; after that the client keeps reconnecting on its own
RETRY_AFTER_ERROR_S = 60.0  # after the hub refused the unit for good


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


def mock_board(settings: Settings) -> MockFactory:
    """gpiozero's mock pins for the parts the settings describe: no hardware is touched."""
    return MockFactory(pin_class=MockPWMPin if settings.pwm_leds else MockPin)


def hub_address(hub_url: str) -> tuple[str, bool]:
    """``host:port`` and whether it is TLS, from ``INTERCOM_HUB_URL``."""
    parts = urlsplit(hub_url)
    secure = parts.scheme == "wss"
    host = f"[{parts.hostname}]" if parts.hostname and ":" in parts.hostname else parts.hostname
    return f"{host}:{parts.port or (443 if secure else 80)}", secure


def hub_trust(settings: Settings, ssl_context: ssl.SSLContext | None) -> tuple[ssl.SSLContext | None, str | None]:
    """How the client trusts a wss hub elsewhere: the caller's ``ssl_context``, one made from
    ``INTERCOM_HUB_CA_FILE``, or the pinned ``INTERCOM_HUB_FINGERPRINT``; neither: the system's CAs."""
    if ssl_context is None and settings.hub_ca_file is not None:
        ssl_context = ssl.create_default_context(cafile=settings.hub_ca_file)
    pin = settings.hub_fingerprint if ssl_context is None else None
    return ssl_context, pin


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
        try:  # first: a door that cannot keep its lockouts does not start
            self.unlock_store = UnlockStore.open(settings.state_dir) if settings.role == "door" else None
        except StateDirError as exc:
            raise SettingsError(str(exc)) from None
        self.watchers: list[Callable[[str, str, object], None]] = []  # (kind, name, value): the demo, a simulator
        self.patterns: dict[str, str] = {}  # each fitted light's pattern now, for a watcher that comes late
        self.hub: EmbeddedHub | None = None
        if settings.hub_embedded:
            from .embedded_hub import EmbeddedHub  # here: a unit without the hub saves its ~8 MB of imports

            self.hub = EmbeddedHub(settings)
            host, secure, pin = self.hub.local_address, self.hub.config.secure, None
            ssl_context = ssl_context or self.hub.client_ssl_context
        else:
            assert settings.hub_url is not None  # the settings insist on one of the two
            host, secure = hub_address(settings.hub_url)
            ssl_context, pin = hub_trust(settings, ssl_context)
            if warning := settings.plain_hub_warning():
                log.warning(warning)
        self._mint = token_minter(settings)
        call_audio = audio.call_audio() if isinstance(audio, AudioSettings) else audio
        self.client = Client(
            host=host,
            refresh_token=self._mint,
            secure=secure,
            ssl_context=ssl_context,
            tls_fingerprint=pin,
            audio=call_audio,
        )
        loop = asyncio.get_running_loop()
        if pin_factory is None and settings.pin_factory == "mock":
            pin_factory = mock_board(settings)
        self.panel = Panel(
            panel_pins(settings), loop, on_press=self._pressed, on_long_press=self._held, pin_factory=pin_factory
        )
        self.lights = Lights(self.panel)
        self.controller = Controller(
            settings.role,
            self.client,
            self._show,
            self._pulse_relay,
            unlock_code=settings.unlock_code.get_secret_value() if settings.unlock_code else None,
            relay_pulse_s=settings.relay_pulse_s,
            unlock_from=settings.unlock_from,
            unlock_store=self.unlock_store,
            auto_answer=settings.auto_answer,
            call_button_hangs_up=settings.call_button_hangs_up,
            ring_timeout_s=settings.ring_timeout_s,
        )

        self.client_pinned = pin is not None
        self.retry_after_error_s = RETRY_AFTER_ERROR_S
        self._retry: asyncio.TimerHandle | None = None
        self._connecting: asyncio.Task[None] | None = None
        self.client.on("error", self._refused)

    def mint_token(self) -> str:
        return self._mint()

    @property
    def retry_pending(self) -> bool:
        """The hub refused this unit, and it will try again (the status light says error meanwhile)."""
        return self._retry is not None

    def connect(self) -> None:
        """Connect in the background and keep connecting, as a unit in service does: a hub that
        is away is waited for (the SDK), and a refusal is tried again every minute (here)."""
        self._retry = None
        self._connecting = asyncio.get_running_loop().create_task(self._setup())

    async def _setup(self) -> None:
        with contextlib.suppress(ClientError):  # already told by the error event, which set the retry
            await self.client.setup(jwt=self._mint())

    def _refused(self, error: ClientError) -> None:
        """A final refusal (a revoked key, an identity the hub will not take, a certificate not
        trusted): the SDK gives up, as a browser app would; a unit on a wall tries again, since
        the fix is made on the hub (or the relay on the cable goes away)."""
        if isinstance(error, CertificateError):
            log.error("%s; trying again in %g s", self._untrusted(error), self.retry_after_error_s)
        else:
            log.error(
                "the hub refused this unit: %s %s; trying again in %g s", error.code, error, self.retry_after_error_s
            )
        self._retry = asyncio.get_running_loop().call_later(self.retry_after_error_s, self.connect)

    def _untrusted(self, error: CertificateError) -> str:
        """Which setting the hub's certificate failed, in the words an installer looks for."""
        settings = self.settings
        if self.client_pinned:
            return (
                f"the hub's certificate does not match INTERCOM_HUB_FINGERPRINT: it shows {error.shown or 'none'} "
                f"(a relay on the network, or a hub whose certificate was made anew)"
            )
        if self.hub is None and settings.hub_ca_file is not None:
            return f"the hub's certificate is not vouched for by INTERCOM_HUB_CA_FILE {settings.hub_ca_file}: {error}"
        return str(error)

    async def start_hub(self) -> None:
        """Start the embedded hub, if this unit runs one (:class:`HubStartError` when it cannot)."""
        if self.hub is not None:
            await self.hub.start()

    async def start(self) -> None:
        """Start the embedded hub, if any, and connect to the hub (raises the SDK's error if it
        refuses this unit's key or identity)."""
        await self.start_hub()
        async with asyncio.timeout(SETUP_TIMEOUT):
            await self.client.setup(jwt=self._mint())

    async def stop(self) -> None:
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        if self._connecting is not None:
            self._connecting.cancel()
        await self.client.destroy()
        self.controller.close()
        self.panel.close()  # the relay de-energised first
        if self.unlock_store is not None:
            self.unlock_store.close()
        if self.hub is not None:
            await self.hub.stop()  # after the unit's own client said goodbye

    def _pressed(self, button: str) -> None:
        self.controller.press(button)

    def _held(self, button: str) -> None:
        self.controller.long_press(button)

    def _show(self, led: str, pattern: str) -> None:
        # A light this unit does not have shows nothing; one already showing the pattern carries
        # on (accepted then confirmed are both "on": a blink is not restarted, nothing is told).
        if led in self.panel.pins.leds and self.patterns.get(led) != pattern:
            self.patterns[led] = pattern
            self.lights.show(led, pattern)
            self._tell("light", led, pattern)

    def _pulse_relay(self, seconds: float) -> None:
        if self.panel.pins.relay is None:
            log.warning("the door was to open, but this unit has no relay (INTERCOM_RELAY_PIN)")
            return
        if self.panel.pulse_relay(seconds):
            log.info("door strike energised for %g s (GPIO%d)", seconds, self.panel.pins.relay)
            self._tell("relay", "door strike", seconds)

    def _tell(self, kind: str, name: str, value: object) -> None:
        for watcher in self.watchers:
            watcher(kind, name, value)
