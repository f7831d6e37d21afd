"""``intercom audio-test``: record a few seconds with a live level meter, then play them back.

For an installer at a unit over SSH: is the microphone wired, is it loud enough, does the
speaker work? It uses the same PortAudio streams and 48 kHz mono format as a call.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable

import numpy as np
import sounddevice as sd

from ..media.tracks import SAMPLE_RATE
from .devices import index_and_name
from .portaudio import PORTAUDIO
from .samples import dbfs, peak_dbfs

METER_WIDTH = 40
SILENT_DBFS = -60.0  # below this the microphone is taken to be unplugged or muted


def meter(level: float) -> str:
    """``[#####.....] -23 dBFS`` for a level between -60 and 0 dBFS."""
    filled = 0 if level == -math.inf else round(max(0.0, min(1.0, (level - SILENT_DBFS) / -SILENT_DBFS)) * METER_WIDTH)
    shown = "-inf" if level == -math.inf else f"{level:5.1f}"
    return f"[{'#' * filled}{'.' * (METER_WIDTH - filled)}] {shown} dBFS"


def record(seconds: float, device: str | None, on_block: Callable[[float], None]) -> np.ndarray:
    """``seconds`` of mono int16 from ``device``, calling ``on_block`` with each block's level."""
    wanted = round(seconds * SAMPLE_RATE)
    blocks: list[np.ndarray] = []
    done = threading.Event()

    def captured(indata: np.ndarray, frames: int, time: object, status: sd.CallbackFlags) -> None:
        blocks.append(indata[:, 0].copy())
        on_block(dbfs(blocks[-1]))
        if sum(len(block) for block in blocks) >= wanted:
            done.set()
            raise sd.CallbackStop

    stream = PORTAUDIO.open_blocking(sd.InputStream, device, captured)  # the format and block size of a call
    try:
        if not done.wait(seconds + 5):
            raise TimeoutError("the microphone delivered no sound in time: is the device busy?")
    finally:
        PORTAUDIO.close_blocking(stream)
    return np.concatenate(blocks)[:wanted]


def play(samples: np.ndarray, device: int | None) -> None:
    """Play mono int16 ``samples`` on ``device`` and wait until they have been heard."""
    sd.play(samples, samplerate=SAMPLE_RATE, device=device, blocking=True)


def run_audio_test(
    seconds: float, microphone: str | None, speaker: str | None, say: Callable[[str], None] = print
) -> float:
    """The whole test; returns the recording's level in dBFS (what an installer reads off)."""
    _, input_name = index_and_name(microphone, "audioinput")
    speaker_index, output_name = index_and_name(speaker, "audiooutput")
    say(f"recording {seconds:g} s from {input_name}: speak now")
    recording = record(seconds, microphone, lambda level: say(meter(level)))
    level = dbfs(recording)
    say(f"recorded: level {level:.1f} dBFS, peak {peak_dbfs(recording):.1f} dBFS")
    if level < SILENT_DBFS:
        say("no sound came in: check the microphone's cable, the card and its gain (alsamixer)")
    say(f"playing it back on {output_name}")
    play(recording, speaker_index)
    say("done")
    return level
