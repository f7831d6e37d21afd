"""Adding a unit to a hub (``intercom units add``): its own key, and the lines of its env file.

Run on the hub's machine, over SSH, by the installer. The hub's database gets a unit key that can
mint tokens for that unit's identity only, with only its role's capabilities; what the other unit
needs is printed once as env-file lines: the hub's ``wss://`` URL, the fingerprint of the hub's
certificate to pin (so the unit trusts exactly this hub, whatever is on the cable between them),
and the key. Nothing here travels over the network: the installer copies the lines.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from ..auth import AccessKey, KeyScope, unit_scope
from ..auth.capabilities import check_identity
from ..hub import Storage, blocking
from ..hub.tls import certificate_fingerprint, served_url
from .settings import DEFAULT_CALL_FLOW, Settings, SettingsError, load_settings

KeyMaker = Callable[[str, KeyScope], AccessKey]  # a key's name and scope -> the key, stored


@dataclass(frozen=True)
class HubSide:
    """Where the new unit's hub keeps its data and how the unit reaches it."""

    data_dir: Path
    url: str  # wss://host:port as the new unit reaches the hub
    cert_file: Path | None = None  # the installer's certificate, when the hub serves one
    desks: tuple[str, ...] = ("desk",)  # who the door rings, and who may open it from a call
    doors: tuple[str, ...] = ("door",)  # who a desk's CALL rings

    @classmethod
    def of_embedded(cls, settings: Settings, url: str | None = None) -> HubSide:
        """The hub inside the unit whose env file is ``settings`` (the desk, usually)."""
        url = url or served_url(settings.hub_listen, settings.hub_port, secure=True)
        return cls(settings.hub_data_dir, url, settings.hub_cert_file, settings.desks, settings.hub_doors)


def embedded_hub_settings(env_file: Path) -> Settings:
    """The settings of the unit whose embedded hub a command on the hub's machine works on
    (``intercom units add``, ``intercom web add``); :class:`SettingsError` when that unit runs none."""
    settings, _ = load_settings(env_file)
    if not settings.hub_embedded:
        raise SettingsError("this unit runs no hub (INTERCOM_HUB_EMBEDDED): run it on the hub's machine")
    return settings


def add_unit(
    hub: HubSide, role: str, identity: str, flow: str | None = None, create_key: KeyMaker | None = None
) -> list[str]:
    """Make the unit's key in the hub's database; the env-file lines the unit needs (the key's
    secret is in them, shown only here). ``create_key``: how a key gets into the hub's database
    (the CLI's, which may be the PostgreSQL several hubs share); default SQLite in ``hub.data_dir``."""
    check_identity(identity)
    if not hub.url.startswith("wss://"):
        raise ValueError(f"the hub URL must be wss://host:port, not {hub.url!r}")
    flow = flow or DEFAULT_CALL_FLOW[role]
    fingerprint = certificate_fingerprint(hub.data_dir, hub.cert_file)
    key = (create_key or partial(_create_key, hub.data_dir))(
        f"unit {identity} ({role})", unit_scope(role, identity, flow)
    )
    _give_back(hub.data_dir)
    stamp = time.strftime("%Y-%m-%d %H:%M")
    lines = [
        f"# {role} unit {identity!r}, added {stamp} (key {key.id}): these lines go into its",
        "# /etc/intercom/intercom.env (mode 640). The key is shown only now.",
        f"INTERCOM_ROLE={role}",
        f"INTERCOM_IDENTITY={identity}",
        f"INTERCOM_HUB_URL={hub.url}",
        f"INTERCOM_HUB_FINGERPRINT={fingerprint}",
        f"INTERCOM_ACCESS_KEY_ID={key.id}",
        f"INTERCOM_ACCESS_KEY={key.secret}",
    ]
    if flow != DEFAULT_CALL_FLOW[role]:
        lines.append(f"INTERCOM_CALL_FLOW={flow}")
    if role == "door":
        lines.append(f"INTERCOM_UNLOCK_FROM={','.join((*hub.desks, 'group:phones'))}")  # and the paired phones
        lines.append("# and the code of the door's own keypad (6 digits or more), e.g.: INTERCOM_UNLOCK_CODE=583920#")
        lines.append("# Home Assistant's Open door opens it only with source:home_assistant in INTERCOM_UNLOCK_FROM")
    rung, variable = (hub.doors, "INTERCOM_HUB_DOORS") if role == "door" else (hub.desks, "INTERCOM_HUB_DESKS")
    if identity not in rung:
        lines.append(f"# on the hub's unit, add {identity} to {variable}: its default call flows ring {','.join(rung)}")
    return lines


def _create_key(data_dir: Path, name: str, scope: KeyScope) -> AccessKey:
    storage = Storage(data_dir)
    try:
        return blocking(storage.create_key(name, scope))
    finally:
        storage.close()


def _give_back(data_dir: Path) -> None:
    """Files root just made in the hub's data directory (its certificate, a new database) belong to
    the directory's owner, the service's user, which must read them."""
    if os.geteuid() != 0:
        return
    owner = data_dir.stat()
    for path in data_dir.iterdir():
        info = path.lstat()
        if path.is_file() and (info.st_uid, info.st_gid) != (owner.st_uid, owner.st_gid):
            os.chown(path, owner.st_uid, owner.st_gid)
