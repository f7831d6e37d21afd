"""Noticing sound cards that come and go, without disturbing the streams that are open.

PortAudio does not tell when a device appears or goes, and only sees a change when it is
re-initialised, which it must not be while a stream is open. So changes are spotted below it,
cheaply enough to look twice a second (:func:`.portaudio.sound_system_state`): the kernel's list of ALSA
cards and the socket of the JACK server PortAudio uses. On a change
the devices are listed again: by re-initialising PortAudio when no stream is open, otherwise by a
fresh process whose PortAudio starts from scratch (about half a second).
"""

from __future__ import annotations

import asyncio
import json
import sys

from .devices import MediaDeviceInfo, list_devices
from .portaudio import PORTAUDIO

FRESH_PROCESS_TIMEOUT = 30.0


async def current_devices() -> list[MediaDeviceInfo]:
    """The devices there are now, seen without touching an open stream."""
    if await PORTAUDIO.rescan():
        return await PORTAUDIO.run(list_devices)
    return await devices_in_fresh_process()


async def devices_in_fresh_process() -> list[MediaDeviceInfo]:
    """The devices a new process's PortAudio finds (their ``index`` is that process's, not ours)."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "intercom.audio.devices",
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(FRESH_PROCESS_TIMEOUT):
            output, _ = await process.communicate()
    except TimeoutError:
        process.kill()
        await process.wait()
        raise
    if process.returncode != 0:
        raise RuntimeError(f"listing sound devices in a fresh process failed (exit {process.returncode})")
    return [MediaDeviceInfo(**fields) for fields in json.loads(output)]
