"""Sound devices as the seed SDK's ``MediaSources`` describes them, with ids that survive a replug.

PortAudio numbers devices in the order it found them, so an index changes when a USB card is
plugged in elsewhere. A device here is named by a ``deviceId`` made from what stays the same:
the host API, the device's name and its direction. ``groupId`` joins a card's microphone and
speaker, as a browser's does. :func:`resolve` turns an id back into what sounddevice opens.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import asdict, dataclass
from typing import Literal

import sounddevice as sd

Kind = Literal["audioinput", "audiooutput"]


class UnknownDevice(LookupError):
    """No sound device has this id (any more)."""


@dataclass(frozen=True)
class MediaDeviceInfo:
    """One direction of one sound device, with the fields of the browser's ``MediaDeviceInfo``."""

    deviceId: str
    kind: Kind
    label: str
    groupId: str
    index: int  # PortAudio's index now: what sounddevice opens
    channels: int
    default_samplerate: float

    def public(self) -> dict[str, str]:
        """The four fields the seed SDK hands to apps."""
        fields = asdict(self)
        return {name: fields[name] for name in ("deviceId", "kind", "label", "groupId")}


def _digest(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def _portaudio_itself(host_api: str, name: str) -> bool:
    """PortAudio's JACK host API lists every JACK client with ports as a device, PortAudio's own
    clients (``PortAudio``, ``PortAudio-01``, ... of this and other processes) too: never a sound card."""
    return host_api.startswith("JACK") and re.fullmatch(r"PortAudio(-\d+)?", name) is not None


def list_devices() -> list[MediaDeviceInfo]:
    """Every capture and playback direction PortAudio knows, inputs first."""
    host_apis = sd.query_hostapis()
    found: list[MediaDeviceInfo] = []
    for kind, channels_key in (("audioinput", "max_input_channels"), ("audiooutput", "max_output_channels")):
        for device in sd.query_devices():
            channels = int(device[channels_key])
            host_api = host_apis[device["hostapi"]]["name"]
            if channels < 1 or _portaudio_itself(host_api, device["name"]):
                continue
            found.append(
                MediaDeviceInfo(
                    deviceId=_digest(host_api, device["name"], kind),
                    kind=kind,  # type: ignore[arg-type]
                    label=f"{device['name']} ({host_api})",
                    groupId=_digest(host_api, device["name"]),
                    index=int(device["index"]),
                    channels=channels,
                    default_samplerate=float(device["default_samplerate"]),
                )
            )
    return found


def media_sources(devices: list[MediaDeviceInfo] | None = None) -> dict[str, dict[str, list[dict[str, str]]]]:
    """The seed's shape: ``{'inputs': {'audio': [...], 'video': []}, 'outputs': {'audio': [...]}}``."""
    devices = list_devices() if devices is None else devices
    return {
        "inputs": {"audio": [d.public() for d in devices if d.kind == "audioinput"], "video": []},
        "outputs": {"audio": [d.public() for d in devices if d.kind == "audiooutput"]},
    }


def resolve(device_id: str, kind: Kind) -> int:
    """The PortAudio index of the device of this direction with this id, or else the one whose label
    contains it (``USB`` in a settings file reads better than an id); :class:`UnknownDevice` if none,
    or if several labels match.

    Asks the PortAudio of this process, which knows the devices of its last initialisation.
    """
    candidates = [device for device in list_devices() if device.kind == kind]
    for device in candidates:
        if device.deviceId == device_id:
            return device.index
    named = [device for device in candidates if device_id.casefold() in device.label.casefold()]
    if len(named) == 1:
        return named[0].index
    if named:
        labels = ", ".join(repr(device.label) for device in named)
        raise UnknownDevice(f"{device_id!r} names several {kind} devices ({labels}); use its id")
    raise UnknownDevice(f"no {kind} device with id or name {device_id!r}; `intercom devices` lists them")


def index_and_name(device_id: str | None, kind: Kind) -> tuple[int | None, str]:
    """What sounddevice opens for ``device_id`` (None: PortAudio's default) and the device's name,
    for saying which device a test uses; :class:`UnknownDevice` or sounddevice's ValueError if none."""
    index = resolve(device_id, kind) if device_id else None
    return index, sd.query_devices(index, "input" if kind == "audioinput" else "output")["name"]


if __name__ == "__main__":  # what a fresh PortAudio finds: see device_watch.devices_in_fresh_process
    print(json.dumps([asdict(device) for device in list_devices()]))
