"""The JACK dummy sound card, probe and room of the audio tests: :mod:`bench.jack_probe` and
:mod:`bench.jack_room`, which the benchmarks share; see their docstrings for the pitfalls they handle."""

from __future__ import annotations

from bench.jack_probe import (
    PERIOD,
    RATE,
    SILENCE,
    JackProbe,
    JackServer,
    JackUnavailable,
    Playback,
    dominant_frequency,
    quiet_libjack,
    rms,
    running_jack_server,
)
from bench.jack_room import Components, JackRoom, OverlapAdd

__all__ = [
    "PERIOD",
    "RATE",
    "SILENCE",
    "Components",
    "JackProbe",
    "JackRoom",
    "JackServer",
    "JackUnavailable",
    "OverlapAdd",
    "Playback",
    "dominant_frequency",
    "quiet_libjack",
    "rms",
    "running_jack_server",
]
