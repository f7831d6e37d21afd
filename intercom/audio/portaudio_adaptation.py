"""Every reach into PortAudio's internals, in one place: surviving a JACK server that went away.

Checked against PortAudio 19.6.0 (Debian 12's ``libportaudio2``; :data:`TESTED_WITH`) on 64-bit
Linux. :func:`check_compatibility` names what no longer holds; ``tests/audio`` runs it.

Why: PortAudio's JACK host API keeps one JACK client for the life of a PortAudio session. When the
JACK server stops under it, that client is dead, and PortAudio has no way back:

* closing a stream of that client waits on the JACK process thread, which never comes (a close
  measured here hung for more than 40 s), or asserts in ``CleanUpStream``;
* ``Pa_Terminate`` asserts on ``jack_client_close`` and aborts the whole process, so PortAudio
  can never be re-initialised to find the server when it returns.

On a Raspberry Pi the sound card is an ALSA device and none of this happens; under JACK (the
tests' sound card, and any unit that runs jackd) a restarted server must not kill the unit. So,
for a stream whose JACK client died, :func:`forget_stream` points the stream at a table of
functions that do nothing, and ``Pa_CloseStream`` then only unlinks it from PortAudio's list of
open streams; :func:`forget_jack_host_api` does the same for the host API's ``Terminate``. What
the dead client held (a few kilobytes) stays allocated: that is the price of carrying on.

The layouts relied on (``pa_hostapi.h``, ``pa_stream.h``):

* ``PaUtilStreamRepresentation`` starts with ``unsigned long magic`` (``0x18273645``), then the
  next-open-stream pointer, then the ``PaUtilStreamInterface*`` that this module replaces;
* ``PaUtilStreamInterface`` is twelve function pointers, ``Close`` first;
* ``PaUtilHostApiRepresentation`` starts with ``unsigned long baseDeviceIndex``, then the public
  ``PaHostApiInfo`` (whose address ``Pa_GetHostApiInfo`` returns), then ``deviceInfos`` and the
  ``Terminate`` pointer.
"""

from __future__ import annotations

import ctypes
from typing import Any

import sounddevice as sd

TESTED_WITH = "PortAudio V19.6.0"
STREAM_MAGIC = 0x18273645
POINTER = ctypes.sizeof(ctypes.c_void_p)
STREAM_INTERFACE_OFFSET = 2 * POINTER  # after magic and nextOpenStream
HOST_API_INFO_OFFSET = ctypes.sizeof(ctypes.c_ulong)  # after privatePaFrontInfo.baseDeviceIndex


class _PaHostApiInfo(ctypes.Structure):
    _fields_ = [
        ("structVersion", ctypes.c_int),
        ("type", ctypes.c_int),
        ("name", ctypes.c_char_p),
        ("deviceCount", ctypes.c_int),
        ("defaultInputDevice", ctypes.c_int),
        ("defaultOutputDevice", ctypes.c_int),
    ]


# Terminate follows the info and the deviceInfos pointer
TERMINATE_OFFSET = HOST_API_INFO_OFFSET + ctypes.sizeof(_PaHostApiInfo) + POINTER

_StreamCall = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p)
_StreamTime = ctypes.CFUNCTYPE(ctypes.c_double, ctypes.c_void_p)
_HostApiCall = ctypes.CFUNCTYPE(None, ctypes.c_void_p)


class _StreamInterface(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_void_p)
        for name in (
            "Close",
            "Start",
            "Stop",
            "Abort",
            "IsStopped",
            "IsActive",
            "GetTime",
            "GetCpuLoad",
            "Read",
            "Write",
            "GetReadAvailable",
            "GetWriteAvailable",
        )
    ]


# Kept for the life of the process: PortAudio holds pointers to them.
_succeed = _StreamCall(lambda stream: 0)
_stopped = _StreamCall(lambda stream: 1)
_no_time = _StreamTime(lambda stream: 0.0)
_terminate_nothing = _HostApiCall(lambda host_api: None)


def _address(function: Any) -> int:
    return ctypes.cast(function, ctypes.c_void_p).value or 0


# Every call succeeds and does nothing; the stream reads as stopped, at time 0.
_INERT_CALLS = {"IsStopped": _stopped, "GetTime": _no_time, "GetCpuLoad": _no_time}
_INERT_STREAM = _StreamInterface(
    **{name: _address(_INERT_CALLS.get(name, _succeed)) for name, _ in _StreamInterface._fields_}
)


class PortAudioIncompatible(RuntimeError):
    """PortAudio is not laid out as this module expects: it must not write into it."""


def _stream_address(stream: sd._StreamBase) -> int:
    address = int(sd._ffi.cast("uintptr_t", stream._ptr))
    if address == 0 or ctypes.c_ulong.from_address(address).value != STREAM_MAGIC:
        raise PortAudioIncompatible("this stream does not start with PortAudio's stream magic")
    return address


def _host_api_address(index: int) -> int:
    info = sd._lib.Pa_GetHostApiInfo(index)
    if info == sd._ffi.NULL:
        raise PortAudioIncompatible(f"PortAudio has no host API {index}")
    address = int(sd._ffi.cast("uintptr_t", info)) - HOST_API_INFO_OFFSET
    ours = _PaHostApiInfo.from_address(address + HOST_API_INFO_OFFSET)
    if ours.name != sd._ffi.string(info.name) or ours.deviceCount != info.deviceCount:
        raise PortAudioIncompatible("PaHostApiInfo does not read back as PortAudio returned it")
    return address


def forget_stream(stream: sd._StreamBase) -> None:
    """Make closing ``stream`` a no-op for its host API, so that ``stream.close()`` only unlinks it.

    For a stream whose JACK client died: the real close would wait for that client forever.
    """
    ctypes.c_void_p.from_address(_stream_address(stream) + STREAM_INTERFACE_OFFSET).value = ctypes.addressof(
        _INERT_STREAM
    )


def forget_jack_host_api() -> bool:
    """Make ``Pa_Terminate`` skip the JACK host API (whose server went away); True if there was one."""
    for index, api in enumerate(sd.query_hostapis()):
        if api["name"].startswith("JACK"):
            address = _host_api_address(index)
            ctypes.c_void_p.from_address(address + TERMINATE_OFFSET).value = _address(_terminate_nothing)
            return True
    return False


def check_compatibility() -> list[str]:
    """What differs from the PortAudio this module was written against; empty when all holds."""
    problems = []
    version = sd.get_portaudio_version()[1]
    if not version.startswith(TESTED_WITH):
        problems.append(f"PortAudio is {version!r}, this module was checked against {TESTED_WITH!r}")
    if POINTER != 8:
        problems.append("only 64-bit layouts were checked")
    try:
        for index in range(len(sd.query_hostapis())):
            _host_api_address(index)
    except PortAudioIncompatible as exc:
        problems.append(str(exc))
    return problems
