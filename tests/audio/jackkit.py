"""The JACK dummy sound card and probe of the audio tests: :mod:`bench.jack_probe`, which the
audio benchmark (``bench/audio.py``) shares; see its docstring for the pitfalls it handles."""

from __future__ import annotations

from bench.jack_probe import (
    PERIOD,
    RATE,
    SILENCE,
    JackProbe,
    JackServer,
    JackUnavailable,
    dominant_frequency,
    quiet_libjack,
    rms,
    running_jack_server,
)

__all__ = [
    "PERIOD",
    "RATE",
    "SILENCE",
    "JackProbe",
    "JackServer",
    "JackUnavailable",
    "dominant_frequency",
    "quiet_libjack",
    "rms",
    "running_jack_server",
]
