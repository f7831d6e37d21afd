"""The hub inside a unit (``INTERCOM_HUB_EMBEDDED=true``): the usual two-unit install, where the
desk hosts the hub and the door connects to ``wss://desk:8443``.

Listening beyond loopback, the hub serves wss with ``INTERCOM_HUB_CERT_FILE`` or, by default, its
own certificate (``INTERCOM_HUB_TLS``, :func:`hub_tls`). An install made before TLS was the
default keeps serving plain ws until its env file says otherwise, with a warning at every start
that names the lines to add: its door's env file says ``ws://`` (:func:`made_before_tls`).

The unit's env file configures this hub. The access key the units mint their tokens with is put
into the hub's database (its secret follows the file; a key revoked with ``intercom keys revoke``
stays revoked), and the call flows the CALL buttons run are made on first start: ``ring_desks``
(the door's call rings ``INTERCOM_HUB_DESKS``; nobody answers: a message and a voicemail) and
``ring_door`` (a desk's CALL rings ``INTERCOM_HUB_DOORS``). A flow changed since with
``intercom callflows`` is left as it is.

The port is bound when the unit is built, before its client, so that the client knows where to
connect even on port 0, and a port in use stops start-up before the hub half-starts.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import socket
import sqlite3
import ssl
from dataclasses import replace
from pathlib import Path

from ..auth import PHONES, unit_scope, warn_if_legacy
from ..auth.certificates import CERT_NAME, loopback_only, pin_of_file
from ..http_client import OutboundPolicy
from ..hub import HubConfig, RunningHub, Storage, running_hub
from ..hub.callflows import CallFlow
from ..hub.config import HUB_MEDIA
from ..hub.retention import StorageLimits
from ..hub.storage import DATABASE_NAME
from ..hub.storage_fault import StorageFault
from ..hub.tls import phone_trust_line, served_certificate, served_url
from ..hub_flags import STORAGE_LIMITS
from .settings import RING_DOOR, Settings, SettingsError

log = logging.getLogger(__name__)


class HubStartError(SettingsError):
    """The embedded hub cannot start as set (its port taken, its data directory or certificate
    unusable, its key revoked): one line naming the variable, like any setting that cannot work."""


DOOR_FLOW = Path(__file__).with_name("flows") / "ring_desks.json"  # also deploy/callflows/ring_desks.json


def default_flows(settings: Settings) -> list[CallFlow]:
    """The flows the CALL buttons run unless the env file names others: the door's (ring the desks
    for the ring timeout, then a message and a voicemail) from :data:`DOOR_FLOW`, with the desks
    and timeout of the settings; a desk's rings the doors."""
    door = CallFlow.from_json(DOOR_FLOW.read_text())
    ring = door.steps[0]
    assert ring.id == "ring" and ring.action == "transfer", f"{DOOR_FLOW} must start by ringing the desks"
    # with every paired phone (group:phones, intercom.hub.pairing), whoever is paired when it rings
    rung = _ringing(settings.desks, settings.ring_timeout_s, groups=(PHONES,))
    door.steps[0] = ring.model_copy(update={"options": rung})
    ring_doors = {"id": "ring", "action": "transfer", "options": _ringing(settings.hub_doors, settings.ring_timeout_s)}
    desk = CallFlow.model_validate({"id": RING_DOOR, "title": "A desk calls the door", "steps": [ring_doors]})
    return [door, desk]


def _ringing(callees: tuple[str, ...], timeout_s: float, groups: tuple[str, ...] = ()) -> dict[str, object]:
    destinations = [f"client:{who}" for who in callees] + [f"group:{group}" for group in groups]
    return {"destination": ",".join(destinations), "timeout": round(timeout_s)}


async def prepare_storage(storage: Storage, settings: Settings) -> None:
    """The env file's access key and the default call flows, in the hub's database."""
    key_id, secret = settings.access_key_id, settings.access_key.get_secret_value()
    before = storage.get_key(key_id)
    # This unit's own key: it may be this unit and nothing more (the others get theirs from
    # `intercom units add`). A key an older version stored without a scope keeps working.
    scope = unit_scope(settings.role, settings.identity, settings.flow)
    if before is not None and before.secret == secret:
        key = before  # nothing to write: a hub whose card went read-only still starts
    else:
        key = await storage.put_key(key_id, secret, name=f"env file of {settings.identity}", scope=scope)
    if key.scope is None:
        warn_if_legacy(key)
    if key.revoked:
        raise HubStartError(
            f"INTERCOM_ACCESS_KEY_ID: key {key_id} is revoked on this hub; `intercom config new-key` makes a new one"
        )
    if before is not None and before.secret != secret:
        log.warning("access key %s: the secret changed in the env file; tokens signed with the old one fail", key_id)
    for flow in default_flows(settings):
        if await storage.get_call_flow(flow.id) is None:
            await storage.create_call_flow(flow)
            log.info("call flow %r made: %s", flow.id, flow.steps[0].options["destination"])


def is_legacy_key(storage: Storage, key_id: str) -> bool:
    """Whether the env file's key is one of an install made before keys had scopes."""
    key = storage.get_key(key_id)
    return key is not None and key.scope is None


def made_before_tls(settings: Settings) -> bool:
    """Whether this hub's data dir is that of an install made before TLS was the default, whose
    other units therefore say ``ws://``: its database holds the env file's key as a legacy key,
    and it never made a certificate of its own (every start since TLS by default would have, so
    a new install's second start is not mistaken for an old one)."""
    data_dir = settings.hub_data_dir
    if (data_dir / CERT_NAME).exists() or not (data_dir / DATABASE_NAME).exists():
        return False
    storage = Storage(data_dir)
    try:
        return is_legacy_key(storage, settings.access_key_id)
    finally:
        storage.close()


def serves_plain(settings: Settings) -> bool:
    """Whether the hub serves plain ws, as ``INTERCOM_HUB_TLS`` says: ``auto`` (the default, also
    when the line is missing), plain on loopback only; ``on``, never; ``off``, always (unless a
    certificate is given, which the settings refuse). A missing line on an install made before TLS
    by default (:func:`made_before_tls`) means plain: that install's door says ``ws://``."""
    if settings.hub_cert_file is not None or settings.hub_tls == "on":
        return False
    if settings.hub_tls == "off" or loopback_only(settings.hub_listen):
        return True
    return "hub_tls" not in settings.model_fields_set and made_before_tls(settings)


def hub_tls(settings: Settings) -> tuple[Path, Path] | None:
    """The certificate and key the hub serves with (``INTERCOM_HUB_CERT_FILE``, else its own, made
    on first use), or ``None`` for plain ws."""
    if serves_plain(settings):
        return None
    return served_certificate(settings.hub_data_dir, settings.hub_cert_file, settings.hub_key_file)


def plain_warning(settings: Settings, port: int) -> str:
    """What a plain hub listening beyond loopback tells at every start: the lines that end it."""
    if settings.hub_tls == "off":
        return (
            f"INTERCOM_HUB_TLS=off: the hub serves plain ws:// on {settings.hub_listen} port {port}: "
            f"tokens and unlock codes readable on the network"
        )
    host = served_url(settings.hub_listen, port, secure=True)
    return (
        f"the hub serves plain ws:// on {settings.hub_listen} port {port}, as installs before TLS by default did: "
        f"the door's token and the unlock code cross the network readable, and a relay on the way can act as "
        f"the hub. To end it, add to this unit's env file:\n"
        f"INTERCOM_HUB_TLS=auto\n"
        f"and change these lines in each other unit's env file:\n"
        f"INTERCOM_HUB_URL={host}\n"
        f"INTERCOM_HUB_FINGERPRINT=<what `intercom units add` prints on this unit>\n"
        f"(or, to keep plain ws:// and this warning shorter, add INTERCOM_HUB_TLS=off here)"
    )


class EmbeddedHub:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        listen = ipaddress.ip_address(settings.hub_listen)
        family = socket.AF_INET6 if listen.version == 6 else socket.AF_INET
        try:
            self.socket = socket.create_server((settings.hub_listen, settings.hub_port), family=family)
        except OSError as exc:
            raise HubStartError(
                f"INTERCOM_HUB_PORT: the hub cannot listen on {settings.hub_listen} port {settings.hub_port} "
                f"({exc.strerror})"
            ) from None
        self.port: int = self.socket.getsockname()[1]
        # The unit's own client comes in over loopback when the hub listens on every address.
        local = ipaddress.ip_address("::1" if listen.version == 6 else "127.0.0.1") if listen.is_unspecified else listen
        self.local_address = f"[{local}]:{self.port}" if local.version == 6 else f"{local}:{self.port}"
        # Calls' media goes out on the address the hub listens on, or on every network for 0.0.0.0.
        media = replace(HUB_MEDIA, host_addresses=() if listen.is_unspecified else (str(listen),))
        try:
            cert, key = hub_tls(settings) or (None, None)
        except (OSError, sqlite3.Error) as exc:
            self.socket.close()
            reason = getattr(exc, "strerror", None) or exc
            raise HubStartError(f"INTERCOM_HUB_DATA_DIR: cannot use {settings.hub_data_dir} ({reason})") from None
        self.config = HubConfig(
            data_dir=settings.hub_data_dir,
            host=settings.hub_listen,
            port=self.port,
            cert_file=cert,
            key_file=key,
            media=media,
            outbound=OutboundPolicy(
                allow_loopback=settings.hub_allow_loopback_requests,
                max_redirects=settings.hub_max_redirects,
                max_flow_bytes=settings.hub_max_flow_bytes,
                max_media_bytes=settings.hub_max_media_bytes,
            ),
            max_calls=settings.hub_max_calls,
            max_calls_per_identity=settings.hub_max_calls_per_identity,
            max_call_duration=settings.hub_max_call_duration_s,
            media_timeout=settings.hub_media_timeout_s,
            max_ring_legs=settings.hub_max_ring_legs,
            storage_limits=StorageLimits.of(
                **{limit.name: getattr(settings, f"hub_{limit.name}") for limit in STORAGE_LIMITS}
            ),
            recording_sync_seconds=settings.hub_recording_sync_seconds,
            heartbeat_seconds=settings.hub_heartbeat_seconds,
            doors=settings.hub_doors,
            mqtt=settings.mqtt(),
            mqtt_open_door=settings.mqtt_open_door,
            mqtt_open_min_interval=settings.mqtt_open_min_interval,
            mqtt_open_timeout=settings.mqtt_open_timeout,
            desk_token_seconds=settings.hub_desk_token_seconds,
            pairing_max_bad_codes=settings.hub_pairing_max_bad_codes,
            pairing_bad_code_window=settings.hub_pairing_bad_code_window,
        )
        self.client_ssl_context = self._client_ssl_context()
        if cert is None and not loopback_only(settings.hub_listen):
            log.warning(plain_warning(settings, self.port))
        elif cert is not None:
            url = served_url(settings.hub_listen, self.port, secure=True)
            log.info("the hub serves %s, certificate SHA-256 fingerprint %s", url, pin_of_file(cert))
            if (line := phone_trust_line(settings.hub_data_dir, cert, url)) is not None:
                log.info(line)
        self._stack = contextlib.AsyncExitStack()
        self.running: RunningHub | None = None

    def _client_ssl_context(self) -> ssl.SSLContext | None:
        """For the unit's own client: trusts exactly the hub's certificate, whatever names it holds
        (it connects over loopback, which a certificate for ``desk.example`` does not name). Also
        where a certificate and key that do not make a pair are found, before the hub starts."""
        cert, key = self.config.cert_file, self.config.key_file
        if cert is None:
            return None
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
            context = ssl.create_default_context(cafile=cert)
        except ssl.SSLError as exc:
            self.socket.close()
            raise HubStartError(
                f"INTERCOM_HUB_CERT_FILE: {cert} and INTERCOM_HUB_KEY_FILE: {key} do not make a TLS certificate "
                f"and key ({exc.reason or exc})"
            ) from None
        context.verify_flags |= ssl.VERIFY_X509_PARTIAL_CHAIN  # the certificate itself as the anchor
        context.check_hostname = False
        return context

    async def start(self) -> RunningHub:
        try:
            storage = Storage(self.config.data_dir, check_after_crash=True)
        except (OSError, sqlite3.Error) as exc:
            reason = getattr(exc, "strerror", None) or exc
            raise HubStartError(f"INTERCOM_HUB_DATA_DIR: cannot use {self.config.data_dir} ({reason})") from None
        self._stack.callback(storage.close)
        try:
            await prepare_storage(storage, self.settings)
            self.running = await self._stack.enter_async_context(running_hub(self.config, storage, self.socket))
        except BaseException:
            await self.stop()
            raise
        return self.running

    @property
    def storage_fault(self) -> StorageFault | None:
        """Whether the hub can write its data directory (``None`` before it starts)."""
        return self.running.app.state.storage.fault if self.running is not None else None

    async def stop(self) -> None:
        """Stop serving (calls in progress end); closes the port even when the hub never started."""
        self.running = None
        await self._stack.aclose()
        self.socket.close()
