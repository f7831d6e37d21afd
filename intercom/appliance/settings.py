"""A unit's settings: one env file (``/etc/intercom/intercom.env``), variables prefixed ``INTERCOM_``.

Everything an installer sets over SSH is here: the unit's role and identity, where the hub is (or
that this unit runs it), the access key it mints its tokens with, the pins of its buttons, lights
and door relay, the unlock code, and, through :class:`~intercom.sdk.AudioSettings` read from the
same file, its sound. ``deploy/intercom.env.example`` documents each variable with its default.

:func:`load_settings` refuses what cannot work with one line naming the variable, refuses an env
file that others may read or anyone but its owner may change (it holds the access key's secret, and
says who may open the door), and refuses a variable no setting has: a misspelt one would otherwise
leave its setting at the default without a word.
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
import ssl
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Literal, get_args
from urllib.parse import urlsplit

from dotenv import dotenv_values
from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from ..auth.capabilities import InvalidIdentity, check_identity
from ..auth.certificates import loopback_only, normalise_fingerprint
from ..http_client import OutboundPolicy
from ..hub_flags import STORAGE_LIMITS
from ..sdk.audio_settings import AudioSettings
from .panel import BUTTONS, KEYPAD_KEYS, LEDS
from .unlock import MIN_CODE_DIGITS, SOURCES

if TYPE_CHECKING:
    from ..hub.mqtt.settings import MqttSettings

DEFAULT_ENV_FILE = Path("/etc/intercom/intercom.env")
PREFIX = "INTERCOM_"
DTMF_CODE = re.compile(r"[0-9*#]{1,16}\Z")
BCM_PINS = range(2, 28)  # the 40-pin header's GPIO2-GPIO27 (0 and 1 are the HAT EEPROM's I2C)
SECRET_MASK = "********"
KEY_ID = r"^[A-Za-z0-9_-]{1,64}$"  # access key and call flow ids: safe in a token and a URL
HUB_STORAGE_LIMITS = tuple(f"hub_{limit.name}" for limit in STORAGE_LIMITS)  # the embedded hub's, as its flags
TOPIC = r"^[^#+\s]+$"  # an MQTT topic's levels, no wildcards
MQTT_OPTIONAL = ("mqtt_url", "mqtt_username", "mqtt_password", "mqtt_password_file", "mqtt_ca_file", "mqtt_pinned_cert")
MIN_EMBEDDED_SECRET = 24  # the embedded hub signs with the env file's secret: no short ones
RING_DESKS, RING_DOOR = "ring_desks", "ring_door"  # the call flows an embedded hub makes
DEFAULT_CALL_FLOW = {"door": RING_DESKS, "desk": RING_DOOR}
# deploy/install.sh makes the env file 0640 root:intercom: the service's group reads it, only root changes it
ENV_FILE_REFUSED_BITS = (
    (stat.S_IROTH, "readable by every user"),
    (stat.S_IWOTH, "writable by every user"),
    (stat.S_IWGRP, "writable by its group"),
)

Pin = int | None  # a BCM GPIO number; None (an empty value) when the part is not fitted
PIN_FIELDS = (*(f"button_{b}_pin" for b in sorted(BUTTONS)), *(f"led_{led}_pin" for led in sorted(LEDS)), "relay_pin")


class SettingsError(Exception):
    """Settings that cannot work, in one line that names the variable."""


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix=PREFIX, extra="ignore")

    role: Literal["door", "desk"] = Field(description="which unit this is: door or desk")
    identity: str = Field(description="this unit's name on the hub (1-30 of A-Z, a-z, 0-9, _)")
    hub_url: str | None = Field(
        None, description="wss:// address of the hub, when not embedded (plain ws:// beyond this machine: warned about)"
    )
    hub_fingerprint: str | None = Field(
        None,
        description="SHA-256 fingerprint of the wss:// hub's certificate, AB:CD:... (`intercom units add` on the hub "
        "prints it); empty: INTERCOM_HUB_CA_FILE or the system's CAs vouch for it",
    )
    hub_ca_file: Path | None = Field(
        None, description="CA certificates (PEM) that vouch for the wss:// hub's certificate, instead of a fingerprint"
    )
    hub_insecure: bool = Field(
        False, description="accept a plain ws:// hub on another machine (tokens and unlock codes readable on the way)"
    )
    hub_embedded: bool = Field(False, description="run the hub inside this unit (the desk, usually)")
    hub_listen: str = Field("0.0.0.0", description="the embedded hub's address (0.0.0.0: every network)")
    hub_port: int = Field(8443, ge=0, le=65535, description="the embedded hub's port (0: any free one)")
    hub_tls: Literal["auto", "on", "off"] = Field(
        "auto",
        description="the embedded hub's TLS: auto (wss beyond loopback, with INTERCOM_HUB_CERT_FILE or its own "
        "certificate), on (on loopback too), off (plain ws: a warning at every start)",
    )
    hub_cert_file: Path | None = Field(
        None, description="the embedded hub's TLS certificate (PEM; empty: its own, made in INTERCOM_HUB_DATA_DIR)"
    )
    hub_key_file: Path | None = Field(None, description="that certificate's private key (PEM)")
    hub_data_dir: Path = Field(Path("/var/lib/intercom"), description="the embedded hub's database and files")
    hub_desk_token_seconds: int = Field(
        600, ge=60, le=86400, description="lifetime of a paired phone's tokens (its page refreshes them)"
    )
    hub_pairing_max_bad_codes: int = Field(
        5, ge=1, description="bad pairing codes one address may send in INTERCOM_HUB_PAIRING_BAD_CODE_WINDOW, then 429"
    )
    hub_pairing_bad_code_window: float = Field(
        600.0, gt=0, allow_inf_nan=False, description="seconds bad pairing codes are counted over"
    )
    hub_recording_sync_seconds: float = Field(
        2.0,
        gt=0,
        allow_inf_nan=False,
        description="the embedded hub flushes a recording to the card every this many seconds of audio: "
        "the most a power cut loses of one",
    )
    hub_heartbeat_seconds: float = Field(
        10.0,
        gt=0,
        allow_inf_nan=False,
        description="while calls run, the embedded hub notes this often that it is alive: a call a power cut "
        "leaves open ends at that time",
    )
    hub_desks: Annotated[tuple[str, ...], NoDecode] = Field(
        (), description=f"who the door's call ({RING_DESKS}) rings, comma-separated (empty: this unit)"
    )
    hub_doors: Annotated[tuple[str, ...], NoDecode] = Field(
        ("door",), description=f"who a desk's CALL button ({RING_DOOR}) rings, comma-separated"
    )
    hub_allow_loopback_requests: bool = Field(
        False,
        description="the embedded hub's fetchCallFlow, play, onFinish and webhooks may reach this machine "
        "(127.0.0.1, ::1) and link-local addresses (169.254.x.y); LAN addresses are always allowed",
    )
    hub_max_redirects: int = Field(5, ge=0, le=20, description="redirects those requests follow, each checked again")
    hub_max_flow_bytes: int = Field(
        OutboundPolicy.max_flow_bytes, ge=1024, description="the largest answer to fetchCallFlow the hub reads"
    )
    hub_max_media_bytes: int = Field(
        OutboundPolicy.max_media_bytes, ge=1024, description="the largest file a play step downloads"
    )
    # The embedded hub's call limits: HubConfig's defaults (docs/call-limits.md says why these).
    hub_max_calls: int = Field(20, ge=1, le=1000, description="calls the embedded hub carries at once (one more: busy)")
    hub_max_calls_per_identity: int = Field(
        4, ge=1, le=100, description="calls one unit may make, be rung in or talk in at once (one more: busy)"
    )
    hub_max_call_duration_s: int = Field(3600, ge=60, le=86400, description="the embedded hub hangs up calls this long")
    hub_media_timeout_s: int = Field(
        30, ge=5, le=3600, description="the embedded hub ends a call whose unit sent no audio this long (a dead unit)"
    )
    hub_max_ring_legs: int = Field(
        20, ge=1, le=100, description="devices one transfer of the embedded hub rings at once"
    )
    # The embedded hub's storage limits (intercom.hub.retention.StorageLimits): empty keeps the
    # hub's default, which `intercom storage` shows.
    hub_recordings_quota_mb: int | None = Field(
        None, gt=0, description="the embedded hub's recordings may use this many MB in all; the oldest go first"
    )
    hub_recording_max_seconds: float | None = Field(
        None, gt=0, description="one recording stops at this length (the call goes on)"
    )
    hub_min_free_mb: int | None = Field(
        None, gt=0, description="no recording starts, and running ones stop, with less free space than this"
    )
    hub_calls_max_age_days: float | None = Field(
        None, gt=0, description="calls older than this leave the call log, with their recordings"
    )
    hub_calls_max_rows: int | None = Field(None, gt=0, description="the call log keeps at most this many calls")
    hub_deliveries_max_age_days: float | None = Field(
        None, gt=0, description="webhook deliveries older than this are forgotten"
    )
    hub_deliveries_max_rows: int | None = Field(
        None, gt=0, description="at most this many webhook deliveries are kept, the newest"
    )
    # The embedded hub's MQTT bridge (intercom.hub.mqtt; docs/home-assistant.md): off while the URL is empty.
    mqtt_url: str | None = Field(None, description="the embedded hub's MQTT broker: mqtt://host[:port] or mqtts://...")
    mqtt_username: str | None = Field(None, description="the user the MQTT bridge logs in as")
    mqtt_password: SecretStr | None = Field(None, description="its password (or INTERCOM_MQTT_PASSWORD_FILE)")
    mqtt_password_file: Path | None = Field(None, description="a file holding its password")
    mqtt_client_id: str = Field("intercom-hub", min_length=1, max_length=64, description="the bridge's client id")
    mqtt_topic_prefix: str = Field("intercom", pattern=TOPIC, description="events go to <prefix>/<unit>/event")
    mqtt_discovery_prefix: str = Field("homeassistant", pattern=TOPIC, description="Home Assistant's discovery prefix")
    mqtt_ca_file: Path | None = Field(None, description="mqtts: the CA that issued the broker's certificate (PEM)")
    mqtt_pinned_cert: Path | None = Field(None, description="mqtts: the broker's own certificate (PEM), pinned")
    mqtt_queue_size: int = Field(1000, ge=1, description="MQTT messages kept while the broker is away; the oldest go")
    mqtt_open_door: bool = Field(
        False,
        description="offer Home Assistant an Open door button; a door opens for it only if its own "
        "INTERCOM_UNLOCK_FROM names source:home_assistant",
    )
    mqtt_open_min_interval: float = Field(
        2.0, gt=0, allow_inf_nan=False, description="seconds between two Open door commands to one door"
    )
    mqtt_open_timeout: float = Field(
        5.0, gt=0, allow_inf_nan=False, description="seconds the hub waits for the door's answer to one"
    )
    access_key_id: str = Field(pattern=KEY_ID, description="id of the hub access key this unit mints its tokens with")
    access_key: SecretStr = Field(description="that key's secret")
    call_flow: str | None = Field(
        None,
        pattern=KEY_ID,
        description=f"the call flow the CALL button runs (empty: {RING_DESKS} on a door, {RING_DOOR} on a desk)",
    )

    button_call_pin: Pin = Field(17, description="CALL button (door; optional on the desk)")
    button_answer_pin: Pin = Field(27, description="ANSWER button (desk)")
    button_reject_pin: Pin = Field(22, description="REJECT / hang-up button (desk)")
    button_mute_pin: Pin = Field(23, description="MUTE button (desk)")
    button_unlock_pin: Pin = Field(24, description="UNLOCK button (desk)")
    keypad_pins: Annotated[dict[str, int], NoDecode] = Field(
        default_factory=dict, description="keypad buttons as key:pin pairs, e.g. 1:5,2:6,#:13 (empty: none)"
    )
    led_status_pin: Pin = Field(5, description="status light: client offline/connecting/connected/error")
    led_call_pin: Pin = Field(6, description="call light: ringing, in a call, failed")
    led_mute_pin: Pin = Field(13, description="mute light (desk)")
    relay_pin: Pin = Field(26, description="door-strike relay (door)")
    pin_factory: Literal["", "mock"] = Field(
        "", description="empty: the Pi's GPIO (gpiozero's choice); mock: no hardware, as in a VM or a simulator"
    )
    buttons_active_low: bool = Field(True, description="buttons pull to ground (internal pull-ups)")
    leds_active_low: bool = Field(False, description="LEDs light when the pin is low")
    relay_active_low: bool = Field(False, description="the relay module energises on a low pin")
    pwm_leds: bool = Field(False, description="dim and breathe the lights (PWM) instead of on/off")
    bounce_ms: int = Field(30, ge=0, le=500, description="a button's edges closer than this are one press")
    long_press_ms: int = Field(
        1000, ge=200, le=10000, description="held this long, a press is a long press (CALL held ends a call)"
    )

    unlock_code: SecretStr | None = Field(
        None,
        description="the door's keypad code: 4-16 of 0-9, * and #, at least 4 before a closing #; "
        "6 digits or more suggested, e.g. 583920# (required on a door; a desk opens with UNLOCK, no code)",
    )
    unlock_from: Annotated[tuple[str, ...], NoDecode] = Field(
        ("desk", "group:phones"),
        description="who may open the door from a call (their UNLOCK, or a code they type), comma-separated; "
        "group:phones names every phone paired with the hub; source:home_assistant lets Home Assistant's "
        "Open door (MQTT, through the hub) open it",
    )
    state_dir: Path = Field(Path("/var/lib/intercom"), description="the door's unlock log and lockouts (kept 0600)")
    relay_pulse_s: float = Field(3.0, gt=0, le=30, description="how long the door strike is energised")
    auto_answer: bool = Field(False, description="the door answers a desk's call by itself (listen at the door)")
    ring_timeout_s: int = Field(30, ge=5, le=300, description="how long the desks ring before the call gives up")
    call_button_hangs_up: bool = Field(False, description="the door's CALL button ends a call in progress")

    @field_validator("identity")
    @classmethod
    def _identity(cls, value: str) -> str:
        try:
            return check_identity(value)
        except InvalidIdentity as exc:
            raise ValueError(str(exc)) from None

    @field_validator("hub_desks", "hub_doors", "unlock_from", mode="before")
    @classmethod
    def _identities(cls, value: object, info: ValidationInfo) -> object:
        if not isinstance(value, str):
            return value
        identities = tuple(dict.fromkeys(item.strip() for item in value.split(",") if item.strip()))
        for identity in identities:
            try:
                if info.field_name == "unlock_from" and identity.startswith("source:"):
                    # a source the hub asks for on behalf of (source:home_assistant): only the known ones
                    if identity.removeprefix("source:") not in SOURCES:
                        raise ValueError(f"{identity!r}: the sources are {', '.join(map('source:'.__add__, SOURCES))}")
                    continue
                # the door may trust a group the hub asserts (group:phones, the paired phones)
                check_identity(identity.removeprefix("group:") if info.field_name == "unlock_from" else identity)
            except InvalidIdentity as exc:
                raise ValueError(f"{identity!r}: {exc}") from None
        return identities

    @field_validator("hub_listen")
    @classmethod
    def _listen(cls, value: str) -> str:
        try:
            return str(ipaddress.ip_address(value.strip()))
        except ValueError:
            raise ValueError(
                f"must be an IP address of this unit, or 0.0.0.0 for every network, not {value!r}"
            ) from None

    @field_validator("hub_data_dir", "state_dir")
    @classmethod
    def _absolute(cls, value: Path) -> Path:
        if not value.is_absolute():
            raise ValueError(f"must be an absolute path, not {str(value)!r}")
        return value

    @field_validator(
        *PIN_FIELDS,
        "hub_cert_file",
        "hub_key_file",
        "hub_fingerprint",
        "hub_ca_file",
        "call_flow",
        "unlock_code",
        *HUB_STORAGE_LIMITS,
        *MQTT_OPTIONAL,
        mode="before",
    )
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        """An empty value: a part not fitted, the hub's own certificate, the role's own call flow,
        the hub's default limit."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("hub_tls", mode="before")
    @classmethod
    def _tls_default(cls, value: object) -> object:
        return "auto" if isinstance(value, str) and not value.strip() else value

    @field_validator("hub_fingerprint")
    @classmethod
    def _fingerprint(cls, value: str | None) -> str | None:
        return None if value is None else normalise_fingerprint(value)  # FingerprintError is a ValueError

    @field_validator("hub_url")
    @classmethod
    def _hub_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        parts = urlsplit(value.strip())
        if parts.scheme not in ("ws", "wss") or not parts.hostname or parts.path not in ("", "/"):
            raise ValueError(f"must look like wss://host:port, not {value!r}")
        return value.strip()

    @field_validator(*PIN_FIELDS)
    @classmethod
    def _bcm(cls, value: Pin) -> Pin:
        if value is not None and value not in BCM_PINS:
            raise ValueError(f"must be a BCM GPIO number from 2 to 27 (or empty: not fitted), not {value}")
        return value

    @field_validator("keypad_pins", mode="before")
    @classmethod
    def _keypad(cls, value: object) -> object:
        if not isinstance(value, str):
            return value
        pairs: dict[str, int] = {}
        for item in filter(None, (part.strip() for part in value.split(","))):
            key, _, pin = item.partition(":")
            if key.strip() not in KEYPAD_KEYS or not pin.strip().isdigit() or int(pin) not in BCM_PINS:
                raise ValueError(f"{item!r} is not key:pin with a key of 0-9, * or # and a pin from 2 to 27")
            if key.strip() in pairs:
                raise ValueError(f"key {key.strip()!r} is given twice")
            pairs[key.strip()] = int(pin)
        return pairs

    @field_validator("access_key")
    @classmethod
    def _secret(cls, value: SecretStr) -> SecretStr:
        if not value.get_secret_value().strip():
            raise ValueError("required, and empty")
        return value

    @field_validator("unlock_code")
    @classmethod
    def _unlock_code(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None:
            return None
        code = value.get_secret_value()
        if not DTMF_CODE.match(code) or len(code.removesuffix("#")) < MIN_CODE_DIGITS:
            raise ValueError(f"must be 4-16 of 0-9, * and #, at least {MIN_CODE_DIGITS} before a closing #")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> Settings:
        if not self.hub_embedded and self.hub_url is None:
            raise ValueError("INTERCOM_HUB_URL: set it, or INTERCOM_HUB_EMBEDDED=true to run the hub here")
        if self.role == "door" and self.unlock_code is None:
            raise ValueError("INTERCOM_UNLOCK_CODE: required on a door (the code of its keypad, 6 digits suggested)")
        if self.hub_embedded:
            self._check_embedded_hub()
        else:
            self._check_hub_trust()
        if self.mqtt_password is not None and self.mqtt_password_file is not None:
            raise ValueError("INTERCOM_MQTT_PASSWORD and INTERCOM_MQTT_PASSWORD_FILE: give one of them")
        self._check_mqtt_url()
        for name in MQTT_OPTIONAL[1:]:
            if self.mqtt_url is None and getattr(self, name) is not None:
                raise ValueError(f"INTERCOM_{name.upper()}: is for the MQTT bridge, and INTERCOM_MQTT_URL is empty")
        if self.mqtt_url is None and self.mqtt_open_door:
            raise ValueError("INTERCOM_MQTT_OPEN_DOOR: is for the MQTT bridge, and INTERCOM_MQTT_URL is empty")
        uses: dict[int, str] = {}
        for name, pin in self.pins().items():
            if pin in uses:
                raise ValueError(f"INTERCOM_{name.upper()}: pin {pin} is also INTERCOM_{uses[pin].upper()}")
            uses[pin] = name
        return self

    def _check_mqtt_url(self) -> None:
        """Checked here, across settings, so that the refusal never echoes a URL that holds a password."""
        if self.mqtt_url is not None:
            try:
                self.mqtt()
            except ValueError as exc:
                raise ValueError(f"INTERCOM_MQTT_URL: {exc}") from None

    def mqtt(self) -> MqttSettings | None:
        """The embedded hub's MQTT bridge settings, the password read from its file if so given."""
        from ..hub.mqtt.settings import MqttSettings

        if self.mqtt_url is None:
            return None
        password = self.mqtt_password.get_secret_value() if self.mqtt_password is not None else None
        if self.mqtt_password_file is not None:
            try:
                password = self.mqtt_password_file.read_text().strip()
            except OSError as exc:
                raise SettingsError(
                    f"INTERCOM_MQTT_PASSWORD_FILE: cannot read {self.mqtt_password_file} ({exc.strerror})"
                ) from None
        return MqttSettings.from_url(
            self.mqtt_url,
            username=self.mqtt_username,
            password=password,
            client_id=self.mqtt_client_id,
            topic_prefix=self.mqtt_topic_prefix,
            discovery_prefix=self.mqtt_discovery_prefix,
            ca_file=self.mqtt_ca_file,
            pinned_cert=self.mqtt_pinned_cert,
            queue_size=self.mqtt_queue_size,
        )

    def _check_embedded_hub(self) -> None:
        if len(self.access_key.get_secret_value()) < MIN_EMBEDDED_SECRET:
            raise ValueError(
                f"INTERCOM_ACCESS_KEY: the embedded hub signs with it, and it is shorter than "
                f"{MIN_EMBEDDED_SECRET} characters: `intercom config new-key` makes one"
            )
        if (self.hub_cert_file is None) != (self.hub_key_file is None):
            raise ValueError("INTERCOM_HUB_CERT_FILE and INTERCOM_HUB_KEY_FILE: set both for TLS, or neither")
        for name in ("hub_cert_file", "hub_key_file"):
            path = getattr(self, name)
            if path is not None and not os.access(path, os.R_OK):
                raise ValueError(f"INTERCOM_{name.upper()}: cannot read {path}")
        if self.hub_tls == "off" and self.hub_cert_file is not None:
            raise ValueError("INTERCOM_HUB_TLS: off, and INTERCOM_HUB_CERT_FILE is set: empty one of them")

    def _check_hub_trust(self) -> None:
        """How this unit trusts its hub: one way, and one that fits the URL's scheme."""
        secure = self.hub_url is not None and self.hub_url.startswith("wss://")
        if self.hub_fingerprint is not None and self.hub_ca_file is not None:
            raise ValueError(
                "INTERCOM_HUB_FINGERPRINT and INTERCOM_HUB_CA_FILE: set one, the fingerprint for the hub's own "
                "certificate or the CA file for one a CA signed"
            )
        if not secure and (self.hub_fingerprint is not None or self.hub_ca_file is not None):
            which = "INTERCOM_HUB_FINGERPRINT" if self.hub_fingerprint is not None else "INTERCOM_HUB_CA_FILE"
            raise ValueError(f"{which}: is for a wss:// hub, and INTERCOM_HUB_URL is {self.hub_url}: make it wss://")
        if secure and self.hub_insecure:
            raise ValueError(
                "INTERCOM_HUB_INSECURE: only for a plain ws:// hub; a wss:// hub is checked by "
                "INTERCOM_HUB_FINGERPRINT, INTERCOM_HUB_CA_FILE or the system's CAs"
            )
        if self.hub_ca_file is not None:
            try:
                ssl.create_default_context(cafile=self.hub_ca_file)
            except ssl.SSLError:
                raise ValueError(f"INTERCOM_HUB_CA_FILE: {self.hub_ca_file} holds no certificate (PEM)") from None
            except OSError as exc:
                raise ValueError(f"INTERCOM_HUB_CA_FILE: cannot read {self.hub_ca_file} ({exc.strerror})") from None

    def plain_hub_warning(self) -> str | None:
        """What to tell at every start (and ``config check``) when this unit's hub talks plain ws
        beyond loopback: the token and the unlock code readable on the network. ``None``: all well.
        (The embedded hub's own warnings are its own: :mod:`.embedded_hub`.)"""
        if self.hub_embedded or self.hub_url is None or self.hub_url.startswith("wss://"):
            return None
        parts = urlsplit(self.hub_url)
        assert parts.hostname is not None  # the URL was checked
        if loopback_only(parts.hostname):
            return None
        if self.hub_insecure:
            return f"INTERCOM_HUB_INSECURE=true: plain {self.hub_url}: the token and unlock codes readable on the way"
        secure_url = parts._replace(scheme="wss").geturl().rstrip("/")
        return (
            f"INTERCOM_HUB_URL is plain {self.hub_url}: this unit's token and the unlock code cross the network "
            f"readable, and a relay on the way can act as the hub. Change these lines (and on the hub unit, "
            f"if it still serves plain ws://, add INTERCOM_HUB_TLS=auto):\n"
            f"INTERCOM_HUB_URL={secure_url}\n"
            f"INTERCOM_HUB_FINGERPRINT=<what `intercom units add` prints on the hub>"
        )

    @property
    def flow(self) -> str:
        """The call flow the CALL button runs: the setting, or the one an embedded hub makes for this role."""
        return self.call_flow or DEFAULT_CALL_FLOW[self.role]

    @property
    def desks(self) -> tuple[str, ...]:
        """Who the embedded hub's ``ring_desks`` flow rings."""
        return self.hub_desks or (self.identity,)

    def pins(self) -> dict[str, int]:
        """Every fitted part's pin by the name of its setting (keypad keys as ``keypad_pins[k]``)."""
        named = {
            name: getattr(self, name)
            for name in type(self).model_fields
            if name.endswith("_pin") and getattr(self, name) is not None
        }
        return named | {f"keypad_pins[{key}]": pin for key, pin in self.keypad_pins.items()}


def shown(settings: BaseSettings) -> dict[str, str]:
    """Each setting as its variable (``INTERCOM_<NAME>``) to its value, secrets masked: what
    ``intercom config check`` prints, in the env file's own syntax."""
    prefix = settings.model_config.get("env_prefix", "")
    lines = {}
    for name in type(settings).model_fields:
        value = getattr(settings, name)
        if isinstance(value, SecretStr):
            text = SECRET_MASK
        elif isinstance(value, dict):
            text = ",".join(f"{key}:{pin}" for key, pin in value.items())
        elif isinstance(value, tuple):
            text = ",".join(value)
        elif isinstance(value, bool):
            text = str(value).lower()
        else:
            text = "" if value is None else str(value)
        lines[f"{prefix}{name.upper()}"] = text
    return lines


def check_env_file(path: Path) -> None:
    """Refuse an env file that is missing, that users other than its owner and group may read, that
    anyone but its owner may change, or that names an ``INTERCOM_*`` variable no setting has."""
    try:
        mode = stat.S_IMODE(path.stat().st_mode)
    except OSError as exc:
        raise SettingsError(f"{path}: cannot read the settings ({exc.strerror})") from None
    for bit, who in ENV_FILE_REFUSED_BITS:
        if mode & bit:
            raise SettingsError(f"{path}: {who} (mode {mode:o}), and it holds the access key: chmod 640 {path}")
    _check_variables(path)


def known_variables() -> frozenset[str]:
    """Every variable the env file may set: one per setting of the unit and of its sound."""
    return frozenset(
        f"{model.model_config.get('env_prefix', '')}{name}".upper()
        for model in (Settings, AudioSettings)
        for name in model.model_fields
    )


def _check_variables(path: Path) -> None:
    known = known_variables()
    try:
        names = dotenv_values(path).keys()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"{path}: cannot read the settings ({exc})") from None
    for name in names:
        if name.upper().startswith(PREFIX) and name.upper() not in known:
            # compared without the prefix they all share, which would make any name close to any other
            closest = difflib.get_close_matches(name.upper().removeprefix(PREFIX), [n[len(PREFIX) :] for n in known], 1)
            hint = f"; did you mean {PREFIX}{closest[0]}?" if closest else " (see deploy/intercom.env.example)"
            raise SettingsError(f"{name}: unknown{hint} (in {path})")


def access_key_of(env_file: Path) -> tuple[str, str]:
    """The access key's id and secret from a unit's env file, checked as :func:`load_settings` checks
    the file, without the rest of the settings: what ``intercom token --env-file`` mints with."""
    check_env_file(env_file)
    values = dotenv_values(env_file)
    key_id, secret = (values.get(f"{PREFIX}{name}") or "" for name in ("ACCESS_KEY_ID", "ACCESS_KEY"))
    for name, value in (("ACCESS_KEY_ID", key_id), ("ACCESS_KEY", secret)):
        if not value:
            raise SettingsError(f"{PREFIX}{name}: required, and not set (in {env_file})")
    return key_id, secret


def load_settings(env_file: Path | None = DEFAULT_ENV_FILE, **overrides: object) -> tuple[Settings, AudioSettings]:
    """The unit's settings and its sound's, from ``env_file`` (None: the environment only) and the
    environment, which wins; :class:`SettingsError` naming the first variable that is wrong.

    ``overrides`` (``role="desk"``) win over both: what a command line says outright, checked as
    the variable would be.
    """
    source = _source(env_file)
    try:
        return Settings(**source, **overrides), AudioSettings(**source)  # type: ignore[arg-type]
    except ValidationError as exc:
        model = AudioSettings if exc.title == AudioSettings.__name__ else Settings
        raise SettingsError(_one_line(exc, model)) from None


def load_audio_settings(env_file: Path | None = DEFAULT_ENV_FILE) -> AudioSettings:
    """The unit's sound settings alone, as :func:`load_settings` reads them: for the installer's
    audio test, which needs the devices and gains and none of the rest."""
    source = _source(env_file)
    try:
        return AudioSettings(**source)  # type: ignore[arg-type]
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, AudioSettings)) from None


def _source(env_file: Path | None) -> dict[str, str]:
    if env_file is None:
        return {}
    check_env_file(env_file)
    return {"_env_file": os.fspath(env_file)}


def _one_line(error: ValidationError, model: type[BaseSettings]) -> str:
    first = error.errors()[0]
    prefix = model.model_config.get("env_prefix", "")
    message = first["msg"].removeprefix("Value error, ")
    if not first["loc"]:  # a check across settings: its message names the variable
        return message
    variable = f"{prefix}{str(first['loc'][0]).upper()}"
    if first["type"] == "missing":
        return f"{variable}: required, and not set"
    given = first.get("input")
    secret = SecretStr in (annotation := model.model_fields[str(first["loc"][0])].annotation, *get_args(annotation))
    shown = "" if secret or isinstance(given, dict) or given is None else f" (got {given!r})"  # never a secret
    return f"{variable}: {message}{shown}"
