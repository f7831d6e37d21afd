"""What ``intercom audio-test --echo`` makes of a take: the test signal it plays, and the figures of
the acoustic path between a unit's speaker and its microphone, with a verdict an installer can act on.

No sound card here (the take comes from :mod:`.echo_test`), so every figure can be checked on
synthetic signals:

* **delay**: from handing a block to the speaker to handing its echo back from the microphone, the
  device buffers and the room together: what the canceller has to find (GCC-PHAT over the test
  signal's band, which gives one sharp peak even through a reverberant room);
* **echo return loss** (ERL): how far below the speaker's signal its echo comes back, in dB;
  negative when the echo is louder than what was played;
* **ERLE**: what a fresh :class:`~.processing.SoundProcessor` (echo cancellation alone) takes off
  that echo, fed the take offline in the order the unit would (the speaker's block before the
  microphone's block handed over at the same moment, never late), measured once it had
  :data:`CONVERGE_S` of signal to converge;
* **clipping**: samples at or near full scale in what the microphone gave;
* **noise floor**: the microphone's level over a quiet stretch before the signal.

The test signal is speech-like (a gliding buzz with breath noise, shaped like speech's spectrum, in
syllables) rather than a sweep: the canceller converges on broadband sound, and a sweep only
excites one frequency at a time.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from ..media.tracks import FRAME_SAMPLES as BLOCK  # the unit's 20 ms device blocks
from ..media.tracks import SAMPLE_RATE as RATE
from .processing import ProcessingSettings, SoundProcessor
from .samples import INT16_MAX, peak_dbfs, power, power_dbfs

QUIET_S = 1.0  # before the signal: the noise floor is measured here
SETTLE_S = 0.25  # the quiet stretch's start left out: streams starting up click and pop
MIN_QUIET_S = 0.3  # of quiet stretch, at least, for a noise floor
SIGNAL_S = 5.5
TAIL_S = 0.6  # after the signal: its echo, at most MAX_DELAY_S late, still has to be recorded
SAME_MOMENT_S = 0.001  # hand-overs this close came in one device cycle (see cancelled())
MAX_DELAY_S = 0.5  # device buffers and a room together stay well below this
# of signal before the canceller's ERLE counts: AEC3 holds back for its first 2.5 s of far-end sound
# (initial_state_seconds in its config); on the tests' rooms it takes 25-34 dB off then, 42-65 after
CONVERGE_S = 3.0
SIGNAL_PEAK_DBFS = -3.0  # as loud as a far-end voice comes out of WebRTC's gain control
SIGNAL_BAND_HZ = (150.0, 6000.0)
SEED = 15

NEAR_FULL_SCALE = 0.98  # of INT16_MAX: a sample this loud is taken as clipped
CLIPPED_SAMPLES = 10  # a lone peak may touch full scale; this many are a clipping microphone
TARGET_PEAK_DBFS = -6.0  # where the echo's peaks should sit: room for a louder voice than the test's
HEARD_PEAK_RATIO = 8.0  # a GCC peak this many standard deviations above the rest is an echo
PEAK_WIDTH = 48  # samples either side of the peak left out of "the rest": its own slopes (1 ms)
LOWEST_ERL_DB = 0.0  # an echo louder than what was played clips first and buries a visitor talking over it
FAINT_ERL_DB = 40.0  # an echo this far down is no echo: a speaker a door unit holds is never that quiet
TARGET_ERL_DB = 6.0  # where a lowered microphone gain should put it
NOISY_DBFS = -40.0  # a noise floor above this drowns a quiet visitor and limits the canceller
GOOD_ERLE_DB = 20.0  # AEC3 alone reaches 30-75 dB on a linear path: below 20 the echo is not linear
MIN_GAIN = 0.01  # -40 dB: the least a suggested gain says, rather than 0 (which plays nothing)

CANCELLER_ONLY = ProcessingSettings(
    echo_cancellation=True, noise_suppression=False, auto_gain=False, high_pass_filter=False
)


def speech_like_signal(seed: int = SEED) -> np.ndarray:
    """The int16 samples the speaker plays (before the unit's speaker gain): :data:`QUIET_S` of
    silence, :data:`SIGNAL_S` of speech-like sound peaking at :data:`SIGNAL_PEAK_DBFS`, and a silent
    tail of :data:`TAIL_S`. The same every time for a seed."""
    rng = np.random.default_rng(seed)
    count = round(SIGNAL_S * RATE)
    seconds = np.arange(count) / RATE
    pitch = 140.0 * 2 ** (0.4 * np.sin(2 * np.pi * 0.7 * seconds) + 0.15 * np.sin(2 * np.pi * 2.3 * seconds))
    cycles = np.cumsum(pitch) / RATE
    buzz = 2 * (cycles % 1.0) - 1  # a sawtooth: every harmonic of the voice's pitch
    source = buzz / np.std(buzz) + 0.5 * rng.standard_normal(count)
    voice = _speech_shaped(source) * _syllables(rng, count)
    scale = 10 ** (SIGNAL_PEAK_DBFS / 20) * INT16_MAX / np.max(np.abs(voice))
    quiet, tail = np.zeros(round(QUIET_S * RATE)), np.zeros(round(TAIL_S * RATE))
    return np.rint(np.concatenate([quiet, voice * scale, tail])).astype(np.int16)


def _speech_shaped(source: np.ndarray) -> np.ndarray:
    """``source`` within :data:`SIGNAL_BAND_HZ`, falling 6 dB an octave above 800 Hz as speech does."""
    spectrum = np.fft.rfft(source)
    frequencies = np.fft.rfftfreq(len(source), 1 / RATE)
    low, high = SIGNAL_BAND_HZ
    shape = np.where((frequencies >= low) & (frequencies <= high), 1.0, 0.0) / np.maximum(1.0, frequencies / 800)
    return np.fft.irfft(spectrum * shape, len(source))


def _syllables(rng: np.random.Generator, count: int) -> np.ndarray:
    """An envelope of syllables (120-280 ms, soft edges, levels 0 to -8 dB) with short gaps."""
    envelope = np.zeros(count)
    position = 0
    while position < count:
        length = round(rng.uniform(0.12, 0.28) * RATE)
        edge = round(0.03 * RATE)
        shape = np.ones(length)
        shape[:edge] = shape[-edge:][::-1] = 0.5 - 0.5 * np.cos(np.pi * np.arange(edge) / edge)
        level = 10 ** (rng.uniform(-8.0, 0.0) / 20)
        piece = shape[: count - position] * level
        envelope[position : position + len(piece)] = piece
        position += length + round(rng.uniform(0.04, 0.15) * RATE)
    return envelope


def signal_span(played: np.ndarray) -> slice:
    """Where the speech-like part of :func:`speech_like_signal` is, in what was played from its start."""
    start = round(QUIET_S * RATE)
    return slice(start, min(len(played), start + round(SIGNAL_S * RATE)))


@dataclass(frozen=True)
class Take:
    """What went to the speaker and what came back from the microphone, on the unit's timeline.

    ``played`` is every block handed to the speaker from the test signal's first sample, the speaker
    gain applied; ``recorded`` every block the microphone handed back, its gain applied. The
    microphone's first block was handed back ``lead_s`` seconds after the speaker's first block was
    handed over (negative: before). ``speaker_latency_s`` and ``microphone_latency_s`` are what
    PortAudio said the devices' buffers hold: the delay hints the unit gives its canceller.
    ``dropouts`` counts blocks the devices lost meanwhile (overflows, underflows): each one shifts
    what follows on the timeline.
    """

    played: np.ndarray
    recorded: np.ndarray
    lead_s: float
    speaker_latency_s: float = 0.0
    microphone_latency_s: float = 0.0
    dropouts: int = 0

    def __post_init__(self) -> None:
        for name in ("played", "recorded"):
            samples = getattr(self, name)
            if samples.dtype != np.int16 or samples.ndim != 1 or len(samples) % BLOCK:
                raise ValueError(f"{name} must be mono int16 in whole {BLOCK}-sample blocks")
        if len(self.played) < round((QUIET_S + SIGNAL_S) * RATE):
            raise ValueError(f"played holds {len(self.played) / RATE:.2f} s, less than the test signal")
        if self.quiet.stop - self.quiet.start < round(MIN_QUIET_S * RATE):
            raise ValueError(f"the microphone started {self.lead_s:.2f} s after the speaker: no quiet stretch left")
        if len(self.recorded) + self.lead < signal_span(self.played).stop + round(MAX_DELAY_S * RATE):
            raise ValueError("the recording ends before the test signal's echo could have come back")

    @property
    def lead(self) -> int:
        """``recorded[j]`` was handed back as ``played[j + lead]`` was handed over."""
        return round(self.lead_s * RATE)

    @property
    def quiet(self) -> slice:
        """Where the microphone gave what it heard before any of the signal could come back (the
        streams' start left out)."""
        return slice(round(SETTLE_S * RATE), max(0, signal_span(self.played).start - self.lead))


@dataclass(frozen=True)
class EchoFigures:
    """The acoustic path as measured; ``None`` where there was no echo to measure it on.

    ``erle_db`` is the canceller's echo return loss enhancement, the noise taken out of both sides;
    when what it left of the echo is below the noise floor, ``erle_below_noise`` is set and
    ``erle_db`` is the echo's height above the noise: the canceller reached at least that.
    """

    noise_floor_dbfs: float
    played_dbfs: float  # the test signal's level at the speaker (RMS over its speech-like part)
    microphone_peak_dbfs: float
    clipped_samples: int
    heard: bool
    dropouts: int = 0  # blocks the sound card lost during the test: the figures are not to be trusted
    echo_dbfs: float | None = None  # the echo's level at the microphone, the noise taken out
    delay_ms: float | None = None
    echo_return_loss_db: float | None = None
    echo_peak_dbfs: float | None = None  # as it would be without clipping (estimated when clipped)
    erle_db: float | None = None
    erle_below_noise: bool = False

    @property
    def clips(self) -> bool:
        return self.clipped_samples >= CLIPPED_SAMPLES


def measure(take: Take, make_processor: Callable[[], SoundProcessor] | None = None) -> EchoFigures:
    """Every figure of ``take``; ``make_processor`` makes the canceller (by default a fresh one,
    echo cancellation alone: noise suppression would take the noise for cancelled echo)."""
    played, recorded = take.played, take.recorded
    span = signal_span(played)
    noise_power = power(recorded[take.quiet])
    settled = recorded[round(SETTLE_S * RATE) :]
    clipped = int(np.count_nonzero(np.abs(settled.astype(np.int32)) >= NEAR_FULL_SCALE * INT16_MAX))
    played_power = power(played[span])
    start, strength = _echo_start(played[span], recorded, span.start - take.lead)
    lag = start - span.start  # the echo of played[i] is recorded[i + lag]
    echo = recorded[span.start + lag : span.stop + lag]
    echo_power = power(echo) - noise_power
    basics = EchoFigures(
        noise_floor_dbfs=round(power_dbfs(noise_power), 1),
        played_dbfs=round(power_dbfs(played_power), 1),
        microphone_peak_dbfs=round(peak_dbfs(settled), 1),
        clipped_samples=clipped,
        # the correlation finds an echo well under the noise, too faint to measure its level by
        heard=strength >= HEARD_PEAK_RATIO and echo_power > 0,
        dropouts=take.dropouts,
    )
    if not basics.heard:
        return basics
    out = cancelled(take, make_processor or (lambda: SoundProcessor(CANCELLER_ONLY)))
    converged = slice(span.start + round(CONVERGE_S * RATE) + lag, span.stop + lag)
    echo_left = power(recorded[converged]) - noise_power
    out_noise = power(out[take.quiet])  # the canceller had nothing to cancel there yet
    residual = power(out[converged]) - out_noise
    erle_below_noise = residual < out_noise
    erle = power_dbfs(echo_left) - power_dbfs(out_noise if erle_below_noise else residual)
    if echo_left <= out_noise:  # an echo below the noise: nothing to tell the canceller's work by
        erle = math.nan
    return replace(
        basics,
        echo_dbfs=round(power_dbfs(echo_power), 1),
        delay_ms=round((lag + take.lead) / RATE * 1000, 1),
        echo_return_loss_db=round(power_dbfs(played_power) - power_dbfs(echo_power), 1),
        echo_peak_dbfs=round(_echo_peak_dbfs(played[span], echo, clipped), 1),
        erle_db=round(erle, 1) if math.isfinite(erle) else None,
        erle_below_noise=erle_below_noise,
    )


def _echo_start(signal: np.ndarray, recorded: np.ndarray, earliest: int) -> tuple[int, float]:
    """Where the echo of ``signal`` starts in ``recorded``, searched from ``earliest`` (the first
    sample handed back after the signal was handed over) to :data:`MAX_DELAY_S` later, and how far
    that peak stands above the rest of the search, in standard deviations: GCC-PHAT within the
    signal's band. The peak may be negative: a speaker wired the other way round."""
    first = max(0, earliest)
    reach = earliest + round(MAX_DELAY_S * RATE) - first
    window = recorded[first : first + len(signal) + reach].astype(np.float64)
    if reach < 0 or not window.any():
        return first, 0.0
    size = 1 << (len(window) + len(signal)).bit_length()
    cross = np.fft.rfft(window, size) * np.conj(np.fft.rfft(signal.astype(np.float64), size))
    frequencies = np.fft.rfftfreq(size, 1 / RATE)
    low, high = SIGNAL_BAND_HZ
    band = (frequencies >= low) & (frequencies <= high)
    whitened = np.where(band, cross / np.maximum(np.abs(cross), 1e-12), 0)
    correlation = np.fft.irfft(whitened, size)[: reach + 1]
    best = int(np.argmax(np.abs(correlation)))
    rest = np.delete(correlation, range(max(0, best - PEAK_WIDTH), best + PEAK_WIDTH + 1))
    spread = float(np.std(rest)) if len(rest) else 0.0
    return first + best, abs(float(correlation[best])) / spread if spread > 0 else 0.0


def _echo_peak_dbfs(signal: np.ndarray, echo: np.ndarray, clipped: int) -> float:
    """The echo's peak; when the microphone clipped, what it would have been: the signal's peak
    scaled by the echo's median magnitude over the signal's (clipping takes the loudest samples,
    never the median). A room's reverb lowers the echo's crest below the signal's, so this errs
    high, by up to 2 dB on the rooms of the tests: the gain it suggests errs on the quiet side."""
    if clipped < CLIPPED_SAMPLES:
        return peak_dbfs(echo)
    scale = float(np.median(np.abs(echo.astype(np.float64)))) / max(1.0, float(np.median(np.abs(signal))))
    return peak_dbfs(signal) + 20 * math.log10(max(scale, 1e-9))


def cancelled(take: Take, make: Callable[[], SoundProcessor]) -> np.ndarray:
    """What a fresh canceller from ``make`` sends of ``take.recorded``, fed as the unit feeds it:
    before each microphone block, every speaker block handed over no later than it (the reference
    first, never late), with the devices' latencies as the delay hint.

    Blocks handed over within :data:`SAME_MOMENT_S` of each other came in the same device cycle (a
    duplex card, JACK), told apart only by the jitter of their callbacks' clock: the speaker's goes
    first. Put after, it would reach the canceller with its echo when the room adds no delay of its
    own, and AEC3 then cancels ~7 dB instead of ~75 (measured on a JACK loop).
    """
    processor = make()
    played, recorded = take.played, take.recorded
    out = np.empty_like(recorded)
    rendered = 0
    ahead = take.lead + round(SAME_MOMENT_S * RATE)
    for start in range(0, len(recorded), BLOCK):
        due = min(len(played), (math.floor((start + ahead) / BLOCK) + 1) * BLOCK)
        while rendered < due:
            processor.render(played[rendered : rendered + BLOCK], take.speaker_latency_s)
            rendered += BLOCK
        out[start : start + BLOCK] = processor.capture(recorded[start : start + BLOCK], take.microphone_latency_s)
    return out


def _level(value: float) -> str:
    return f"{round(value, 1) + 0.0:6.1f}" if math.isfinite(value) else "  -inf"  # + 0.0: no "-0.0"


def figure_lines(figures: EchoFigures) -> list[str]:
    """The figures as an installer reads them, one a line."""
    lines = [
        f"noise floor       {_level(figures.noise_floor_dbfs)} dBFS  before the test sound",
        f"speaker signal    {_level(figures.played_dbfs)} dBFS",
        f"microphone peak   {_level(figures.microphone_peak_dbfs)} dBFS  {figures.clipped_samples} samples clipped",
    ]
    if not figures.heard:
        return [*lines, "echo              none heard"]
    assert figures.echo_dbfs is not None and figures.echo_return_loss_db is not None
    loss = figures.echo_return_loss_db
    side = f"{loss:.1f} dB below" if loss >= 0 else f"{-loss:.1f} dB above"
    lines += [
        f"echo              {_level(figures.echo_dbfs)} dBFS  {side} the speaker signal (echo return loss)",
        f"delay             {figures.delay_ms:6.0f} ms    speaker to microphone, the device buffers included",
    ]
    if figures.erle_db is None:
        return [*lines, "canceller (ERLE)      -        the echo is below the noise floor"]
    at_least = ", at least: what is left is below the noise floor" if figures.erle_below_noise else ""
    return [*lines, f"canceller (ERLE)  {figures.erle_db:6.1f} dB    after {CONVERGE_S:g} s of signal{at_least}"]


@dataclass(frozen=True)
class Verdict:
    """``good`` when nothing needs doing; ``lines``: what is wrong and what to change, or why it is good."""

    good: bool
    lines: tuple[str, ...]


def _gain(value: float) -> str:
    """A suggested gain rounded down to two significant digits (0.29, 1.4, 12): no louder than asked."""
    digits = 1 - math.floor(math.log10(max(value, MIN_GAIN)))
    return f"{max(MIN_GAIN, math.floor(value * 10**digits + 1e-9) / 10**digits):g}"


def verdict(
    figures: EchoFigures, speaker_gain: float, microphone_gain: float, echo_cancellation: bool = True
) -> Verdict:
    """What the installer should do about ``figures``, measured at these gains (the settings'
    INTERCOM_AUDIO_SPEAKER_GAIN and INTERCOM_AUDIO_MICROPHONE_GAIN), with the unit's canceller on
    or off (INTERCOM_AUDIO_ECHO_CANCELLATION): the figures say what it would reach either way."""
    problems: list[str] = []
    if figures.dropouts:
        problems.append(
            f"the sound card lost {figures.dropouts} blocks during the test (the machine was busy), so these "
            "figures are off: stop what else runs (sudo systemctl stop intercom) and test again"
        )
    faint = figures.echo_return_loss_db is not None and figures.echo_return_loss_db > FAINT_ERL_DB
    if not figures.heard or faint:
        if speaker_gain == 0:
            problems.append("no echo heard: INTERCOM_AUDIO_SPEAKER_GAIN is 0, the speaker plays nothing: set it to 1.0")
        elif figures.noise_floor_dbfs == -math.inf:
            problems.append(
                "no echo heard, and the microphone gives digital silence: is the microphone connected, "
                "INTERCOM_AUDIO_MICROPHONE the card it is on (`intercom devices`), its capture unmuted (alsamixer)?"
            )
        elif figures.noise_floor_dbfs > NOISY_DBFS:
            problems.append("no echo heard over the noise")  # what to do about the noise follows
        else:
            barely = f" (it comes back {figures.echo_return_loss_db:.0f} dB down)" if faint else ""
            problems.append(
                f"no echo heard{barely}: is the speaker connected? Check its cable and amplifier, and that "
                "INTERCOM_AUDIO_SPEAKER names the card it is on (`intercom devices`)"
            )
    elif figures.clips:
        assert figures.echo_peak_dbfs is not None
        lower = 10 ** ((TARGET_PEAK_DBFS - figures.echo_peak_dbfs) / 20)
        line = (
            f"the microphone clips at this speaker gain ({figures.clipped_samples} samples at full scale): "
            f"lower INTERCOM_AUDIO_SPEAKER_GAIN to {_gain(speaker_gain * lower)} (now {speaker_gain:g})"
        )
        if microphone_gain > 1:
            line += f", or INTERCOM_AUDIO_MICROPHONE_GAIN to {_gain(microphone_gain * lower)} (now {microphone_gain:g})"
        problems.append(line)
    if figures.heard and not faint:
        assert figures.echo_return_loss_db is not None
        loss = figures.echo_return_loss_db
        if loss < LOWEST_ERL_DB:
            lower = 10 ** ((loss - TARGET_ERL_DB) / 20)
            problems.append(
                f"the echo comes back louder than the speaker signal ({-loss:.1f} dB above it): move the microphone "
                "away from the speaker or turn it away, or lower INTERCOM_AUDIO_MICROPHONE_GAIN to "
                f"{_gain(microphone_gain * lower)} (now {microphone_gain:g})"
            )
    if figures.noise_floor_dbfs > NOISY_DBFS:
        problems.append(
            f"noise floor {figures.noise_floor_dbfs:.0f} dBFS before anything played, a visitor's voice has to "
            "rise above it: test again in a quiet moment; if it stays, it is electrical: hum from a ground loop or "
            "the USB power, or hiss from a capture gain set too high (alsamixer)"
        )
    if figures.heard and not faint and not echo_cancellation:
        problems.append("INTERCOM_AUDIO_ECHO_CANCELLATION is false: calls send this echo as it is; set it to true")
    erle = figures.erle_db
    if not problems and erle is not None and not figures.erle_below_noise and erle < GOOD_ERLE_DB:
        problems.append(
            f"the canceller reaches only {erle:.0f} dB: the echo is more than the speaker signal delayed and "
            "scaled (a rattling housing, an overdriven amplifier or speaker): look for what rattles, or lower "
            f"INTERCOM_AUDIO_SPEAKER_GAIN to {_gain(speaker_gain / 2)} (now {speaker_gain:g})"
        )
    if problems:
        return Verdict(False, tuple(problems))
    if erle is None:
        return Verdict(True, ("good: the echo is below the noise floor, nothing for the canceller to do",))
    if figures.erle_below_noise:
        return Verdict(True, (f"good: the canceller takes the echo below the noise floor (at least {erle:.0f} dB)",))
    return Verdict(True, (f"good: the canceller reaches {erle:.0f} dB",))
