"""Call-progress tones: ringback, busy and congestion by region, a ring for the callee, DTMF feedback.

A :class:`Tone` is data: one or two frequencies and a cadence of ``(on, off)`` periods in seconds.
A :class:`TonePlan` gathers the tones of one region; :data:`PLANS` holds the known regions and
:func:`plan_for` looks one up by name. :func:`tone_pcm` renders a tone to PCM; :class:`ToneTrack`
plays one in real time as an aiortc track, and :class:`WavTrack` loops a sound file (a ring tone
chosen in settings, decoded once into a :class:`SoundFile`) the same way.

Where the values come from:

- ``eu`` (and ``nl``, which uses it unchanged): the CEPT harmonised tones at 425 Hz, CEPT
  Recommendation T/CS 20-15 as analysed in ETSI TR 101 041-2 (1997) and ETSI ETR 187 (1995, tones
  generated in terminals): ringing tone 1 s on 4 s off, busy 0.5 s / 0.5 s, congestion
  0.25 s / 0.25 s. The Netherlands' entry in ITU-T E.180 Supplement 2 ("Various tones used in
  national networks", 2003 edition) has exactly these values. Several CEPT countries deviate in the
  cadence (Germany's busy tone is 0.48/0.48, Sweden's 0.25/0.25): add a plan for them when needed.
- ``us``: the North American Precise Tone Plan, Telcordia GR-506-CORE (LSSGR, signalling for
  analog interfaces): audible ringing 440+480 Hz 2 s on 4 s off, busy 480+620 Hz 0.5/0.5,
  reorder 480+620 Hz 0.25/0.25.
- ``uk``: BT SIN 350 (BT network tones): ringing tone 400+450 Hz 0.4 on 0.2 off 0.4 on 2.0 off,
  busy (engaged) 400 Hz 0.375/0.375, congestion 400 Hz 0.4 on 0.35 off 0.225 on 0.525 off.
- DTMF: the row/column pairs of ITU-T Q.23; 100 ms of tone is well above the 40 ms that Q.24
  requires a receiver to accept, and is what handsets commonly play as key feedback.
- The ring on the callee's speaker is not a network tone and no standard fixes it: 880 Hz and
  1120 Hz taking turns 20 times a second (an electronic ringer's trill, around 1 kHz where small
  speakers are loud), in the double-ring cadence familiar from the UK ringing tone.

Levels are left to the caller (``amplitude``, a fraction of full scale): E.180's dBm0 levels
describe a line, not a loudspeaker.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType

import av
import numpy as np

from .tracks import FRAME_SAMPLES, FULL_SCALE, SAMPLE_RATE, PacedSource

DEFAULT_AMPLITUDE = 0.3  # peak of a tone, as a fraction of full scale: loud enough, with room for a mix
FADE_SECONDS = 0.004  # raised-cosine ramp inside each edge of a burst: no click, yet -26 dB within 0.6 ms
DTMF_SECONDS = 0.1
MAX_WAV_SECONDS = 60.0  # a ring tone is decoded into memory whole; a long file is a mistake, not a ring


@dataclass(frozen=True, slots=True)
class Tone:
    """One tone: ``frequencies`` in Hz sounding during the on periods of ``cadence``.

    ``cadence`` is a sequence of ``(on_seconds, off_seconds)`` pairs, played in order and, if
    ``repeat``, over and over; a tone that does not repeat is silent once the cadence has played.
    An ``off`` of 0 joins a burst to the next one (``((1.0, 0.0),)`` repeating is a continuous tone).
    Several frequencies sound together, each at an equal share of the amplitude, unless
    ``warble_hz`` is set: then they take turns, going round all of them ``warble_hz`` times a second,
    with the phase carried across each change so the trill does not click.
    """

    frequencies: tuple[float, ...]
    cadence: tuple[tuple[float, float], ...]
    repeat: bool = True
    warble_hz: float = 0.0

    def __post_init__(self) -> None:
        frequencies = tuple(float(hz) for hz in self.frequencies)
        cadence = tuple((float(on), float(off)) for on, off in self.cadence)
        object.__setattr__(self, "frequencies", frequencies)
        object.__setattr__(self, "cadence", cadence)
        if not frequencies or min(frequencies) <= 0:
            raise ValueError(f"a tone needs one or more positive frequencies, not {frequencies}")
        if not cadence:
            raise ValueError("a tone needs a cadence of at least one (on_seconds, off_seconds) pair")
        if any(on <= 0 or off < 0 for on, off in cadence):
            raise ValueError(f"cadence {cadence}: every on period must be positive and no off period negative")
        if self.warble_hz < 0:
            raise ValueError(f"warble_hz must not be negative, not {self.warble_hz}")

    @property
    def period(self) -> float:
        """One round of the cadence, in seconds: the whole tone if it does not repeat."""
        return sum(on + off for on, off in self.cadence)


def _digit_tones() -> Mapping[str, Tone]:
    rows, columns = (697, 770, 852, 941), (1209, 1336, 1477, 1633)
    keypad = ("123A", "456B", "789C", "*0#D")
    return MappingProxyType(
        {
            key: Tone((rows[row], columns[column]), ((DTMF_SECONDS, 0.0),), repeat=False)
            for row, keys in enumerate(keypad)
            for column, key in enumerate(keys)
        }
    )


DTMF = _digit_tones()
RING = Tone((880, 1120), ((0.4, 0.2), (0.4, 2.0)), warble_hz=20)


@dataclass(frozen=True, slots=True)
class TonePlan:
    """The call-progress tones of one region.

    ``ringback`` is what a caller hears while the far end rings, ``busy`` when it is engaged, and
    ``congestion`` (reorder) when the call fails; ``ring`` sounds on the callee's own speaker and
    ``dtmf`` answers each key pressed during a call.
    """

    region: str
    description: str
    ringback: Tone
    busy: Tone
    congestion: Tone
    ring: Tone = RING
    dtmf: Mapping[str, Tone] = field(default_factory=lambda: DTMF, hash=False)

    def digit(self, key: str) -> Tone:
        """The feedback tone for DTMF ``key``; ValueError for anything but one of ``0-9 * # A-D``."""
        try:
            return self.dtmf[key.upper()]
        except (KeyError, AttributeError):
            raise ValueError(f"no DTMF tone for {key!r}: keys are {''.join(self.dtmf)}") from None


EU = TonePlan(
    region="eu",
    description="CEPT / ETSI harmonised tones (425 Hz)",
    ringback=Tone((425,), ((1.0, 4.0),)),
    busy=Tone((425,), ((0.5, 0.5),)),
    congestion=Tone((425,), ((0.25, 0.25),)),
)
US = TonePlan(
    region="us",
    description="North American Precise Tone Plan",
    ringback=Tone((440, 480), ((2.0, 4.0),)),
    busy=Tone((480, 620), ((0.5, 0.5),)),
    congestion=Tone((480, 620), ((0.25, 0.25),)),
)
UK = TonePlan(
    region="uk",
    description="United Kingdom (BT SIN 350)",
    ringback=Tone((400, 450), ((0.4, 0.2), (0.4, 2.0))),
    busy=Tone((400,), ((0.375, 0.375),)),
    congestion=Tone((400,), ((0.4, 0.35), (0.225, 0.525))),
)
PLANS: Mapping[str, TonePlan] = MappingProxyType(
    {plan.region: plan for plan in (EU, replace(EU, region="nl", description="Netherlands (CEPT tones)"), UK, US)}
)


def plan_for(region: str) -> TonePlan:
    """The tone plan of ``region`` (``"eu"``, ``"nl"``, ``"uk"``, ``"us"``; any case)."""
    try:
        return PLANS[region.strip().lower()]
    except KeyError:
        raise ValueError(f"no tone plan for region {region!r}: known regions are {', '.join(sorted(PLANS))}") from None


class _Synth:
    """Renders ``tone`` at ``samplerate``: any run of samples, addressed by their number in the stream."""

    def __init__(self, tone: Tone, samplerate: int, amplitude: float) -> None:
        if samplerate <= 0:
            raise ValueError(f"samplerate must be positive, not {samplerate}")
        if not 0 < amplitude <= 1:
            raise ValueError(f"amplitude is a fraction of full scale in (0, 1], not {amplitude}")
        if max(tone.frequencies) >= samplerate / 2:
            raise ValueError(f"{max(tone.frequencies)} Hz cannot be played at {samplerate} samples a second")
        self.tone = tone
        self.samplerate = samplerate
        self.peak = amplitude * FULL_SCALE
        self.fade = max(1, round(FADE_SECONDS * samplerate))
        self.gains = _cycle_gains(tone, samplerate, self.fade)

    def render(self, start: int, count: int) -> np.ndarray:
        """Samples ``start`` to ``start + count`` of the stream, as int16."""
        n = start + np.arange(count)
        length = len(self.gains)
        if self.tone.repeat:
            # Before the stream there was silence, even when the cadence runs on across its end.
            gains = np.minimum(self.gains[n % length], _ramp((n + 1) / self.fade))
        else:
            gains = np.where(n < length, self.gains[np.minimum(n, length - 1)], 0.0)
        return np.round(self.peak * gains * self._oscillator(n)).astype(np.int16)

    def _oscillator(self, n: np.ndarray) -> np.ndarray:
        """The waveform at full level, from -1 to 1. Phase is kept modulo one cycle: exact for hours."""
        hz = np.asarray(self.tone.frequencies)
        rate = self.samplerate
        if not self.tone.warble_hz or len(hz) == 1:
            cycles = np.mod(np.outer(n, hz), rate) / rate
            return np.sin(2 * np.pi * cycles).sum(axis=1) / len(hz)
        turn = rate / (self.tone.warble_hz * len(hz))  # samples each frequency lasts
        index = np.floor(n / turn)
        rounds, which = np.divmod(index, len(hz))
        which = which.astype(np.intp)
        before = np.concatenate([[0.0], np.cumsum(hz)])  # what the earlier turns of a round add up to
        elapsed = rounds * turn * hz.sum() + turn * before[which] + (n - index * turn) * hz[which]
        return np.sin(2 * np.pi * np.mod(elapsed, rate) / rate)


def _ramp(x: np.ndarray) -> np.ndarray:
    return 0.5 - 0.5 * np.cos(np.pi * np.clip(x, 0.0, 1.0))


@functools.lru_cache(maxsize=16)  # a region's tones, its failure tones and the keys: a few MB at most
def _cycle_gains(tone: Tone, samplerate: int, fade: int) -> np.ndarray:
    """The gain of each sample over one round of the cadence: 1 on, 0 off, ramps inside the bursts.

    A burst ramps up over its first ``fade`` samples and down over its last, so the off periods stay
    digital silence and each burst lies within its nominal on period; where an off period is 0 the
    two bursts join without a dip. Kept once worked out, read-only: a 5 s cadence takes ~30 ms to
    work out here, too long to spend on the event loop for every call that rings.
    """
    gate = np.concatenate(
        [
            np.r_[np.ones(round(on * samplerate), dtype=bool), np.zeros(round(off * samplerate), dtype=bool)]
            for on, off in tone.cadence
        ]
    )
    if tone.repeat:
        context, offset = np.concatenate([gate, gate, gate]), len(gate)  # the neighbours are the cadence itself
    else:
        context, offset = np.r_[False, gate, False], 1  # silence before and after
    index = np.arange(len(context))
    far = 2 * len(context)
    last_off = np.maximum.accumulate(np.where(context, -far, index))
    next_off = np.minimum.accumulate(np.where(context, far, index)[::-1])[::-1]
    distance = np.minimum(index - last_off, next_off - index)  # 0 when off, 1 at a burst's first and last sample
    gains = _ramp(distance[offset : offset + len(gate)] / fade)
    gains.flags.writeable = False
    return gains


def tone_pcm(
    tone: Tone, seconds: float, samplerate: int = SAMPLE_RATE, amplitude: float = DEFAULT_AMPLITUDE
) -> np.ndarray:
    """The first ``seconds`` of ``tone`` as mono int16 samples, the cadence starting at sample 0.

    ``amplitude`` is the peak, as a fraction of full scale, of all frequencies together.
    """
    if seconds < 0:
        raise ValueError(f"seconds must not be negative, not {seconds}")
    return _Synth(tone, samplerate, amplitude).render(0, round(seconds * samplerate))


class ToneTrack(PacedSource):
    """An aiortc audio track playing ``tone`` in real time: 48 kHz mono s16 in 20 ms frames.

    The cadence starts with the first frame and loops; a tone that does not repeat (a DTMF digit)
    plays once and then the track carries silence, frames still flowing, until it is stopped.
    """

    def __init__(self, tone: Tone, amplitude: float = DEFAULT_AMPLITUDE) -> None:
        synth = _Synth(tone, SAMPLE_RATE, amplitude)
        super().__init__()
        self.tone = tone
        self._synth = synth

    def samples(self, pts: int) -> np.ndarray:
        return self._synth.render(pts, FRAME_SAMPLES)


class WavError(ValueError):
    """A sound file that cannot be played: missing, unreadable, empty or too long."""


@dataclass(frozen=True, eq=False)
class SoundFile:
    """A sound file decoded into memory as 48 kHz mono int16 (:attr:`pcm`), to be played again and again.

    :meth:`read` decodes the whole file at once, so that one that cannot be played raises
    :class:`WavError` where it is configured (a ring tone named in settings) rather than in the
    middle of a ring, and no file stays open.
    """

    path: str
    pcm: np.ndarray = field(repr=False)

    @classmethod
    def read(cls, path: str | os.PathLike[str], max_seconds: float = MAX_WAV_SECONDS) -> SoundFile:
        """Decode ``path``: a WAV file (any sample format, rate and channel count), or anything FFmpeg reads.

        That takes a few milliseconds for a ring tone: call it from a thread if the file may be large or slow.
        """
        return cls(os.fspath(path), _decode(os.fspath(path), max_seconds))

    @property
    def duration(self) -> float:
        """One pass through the file, in seconds."""
        return len(self.pcm) / SAMPLE_RATE


class WavTrack(PacedSource):
    """An aiortc audio track looping a sound file in real time, as 48 kHz mono s16.

    ``sound`` is a path, read here by :meth:`SoundFile.read` (raising :class:`WavError`), or a
    :class:`SoundFile` read before, which each ring can then loop without reading the file again.
    """

    def __init__(self, sound: str | os.PathLike[str] | SoundFile, max_seconds: float = MAX_WAV_SECONDS) -> None:
        if not isinstance(sound, SoundFile):
            sound = SoundFile.read(sound, max_seconds)
        super().__init__()
        self.sound = sound

    @property
    def path(self) -> str:
        return self.sound.path

    @property
    def pcm(self) -> np.ndarray:
        """The audio as played: 48 kHz mono int16."""
        return self.sound.pcm

    @property
    def duration(self) -> float:
        """One pass through the file, in seconds."""
        return self.sound.duration

    def samples(self, pts: int) -> np.ndarray:
        return self.pcm[(pts + np.arange(FRAME_SAMPLES)) % len(self.pcm)]


def _decode(path: str, max_seconds: float) -> np.ndarray:
    resampler = av.AudioResampler(format="s16", layout="mono", rate=SAMPLE_RATE)
    limit = round(max_seconds * SAMPLE_RATE)
    chunks: list[np.ndarray] = []
    have = 0
    try:
        with av.open(path) as container:
            if not container.streams.audio:
                raise WavError(f"cannot play {path}: it holds no audio stream")
            for frame in container.decode(container.streams.audio[0]):
                have += _collect(resampler.resample(frame), chunks)
                if have > limit:
                    raise WavError(f"cannot play {path}: longer than {max_seconds:g} s")
            have += _collect(resampler.resample(None), chunks)
    except FileNotFoundError as error:
        raise WavError(f"cannot play {path}: no such file") from error
    except (OSError, av.FFmpegError) as error:
        raise WavError(f"cannot play {path}: {error}") from error
    if have == 0:
        raise WavError(f"cannot play {path}: it holds no samples")
    if have > limit:
        raise WavError(f"cannot play {path}: longer than {max_seconds:g} s")
    return np.concatenate(chunks)


def _collect(frames: Iterable[av.AudioFrame], chunks: list[np.ndarray]) -> int:
    added = 0
    for frame in frames:
        samples = frame.to_ndarray().reshape(-1)
        chunks.append(samples)
        added += len(samples)
    return added
