"""Text to speech with the real espeak-ng: what it sounds like, and that a prompt is made only once."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from intercom.media import SpeechError, speak
from intercom.media.tracks import SILENCE_RMS

from ..conftest import STEP
from ..listening import RATE

SENTENCE = "Nobody is home, leave a message"


@pytest.fixture
def espeak_runs(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """The argument lists of every process started while the test runs."""
    runs: list[tuple[Any, ...]] = []
    start = asyncio.create_subprocess_exec

    async def counted(*args: Any, **kwargs: Any) -> asyncio.subprocess.Process:
        runs.append(args)
        return await start(*args, **kwargs)

    monkeypatch.setattr(asyncio, "create_subprocess_exec", counted)
    return runs


def pitch(samples: np.ndarray) -> float:
    """The median fundamental, by autocorrelation over the loud 40 ms blocks, in Hz (60-400 Hz)."""
    block = round(0.04 * RATE)
    blocks = samples[: len(samples) // block * block].astype(np.float64).reshape(-1, block)
    rms = np.sqrt(np.mean(blocks**2, axis=1))
    shortest, longest = RATE // 400, RATE // 60
    found = []
    for window in blocks[rms > 0.3 * rms.max()]:
        window = window - window.mean()
        correlation = np.correlate(window, window, "full")[block - 1 :]
        found.append(RATE / (shortest + np.argmax(correlation[shortest:longest])))
    return float(np.median(found))


async def test_a_sentence_is_seconds_of_speech_at_48_khz(tmp_path: Path) -> None:
    async with asyncio.timeout(STEP):
        samples = await speak(SENTENCE, "en", "female", tmp_path)

    assert samples.dtype == np.int16 and samples.ndim == 1 and not samples.flags.writeable
    assert 1.0 <= len(samples) / RATE <= 6.0
    assert np.sqrt(np.mean(samples.astype(np.float64) ** 2)) > 10 * SILENCE_RMS
    power = np.abs(np.fft.rfft(samples.astype(np.float64))) ** 2
    hz = np.fft.rfftfreq(len(samples), 1 / RATE)
    assert power[(hz >= 100) & (hz <= 4000)].sum() > 0.8 * power.sum()  # speech band, not espeak's 22 kHz edges


async def test_the_female_voice_speaks_higher_than_the_male(tmp_path: Path) -> None:
    async with asyncio.timeout(STEP):
        male = await speak(SENTENCE, "en", "male", tmp_path)
        female = await speak(SENTENCE, "en", "female", tmp_path)
    assert pitch(female) > 1.5 * pitch(male)


async def test_a_prompt_said_again_comes_from_memory_then_from_disk(
    tmp_path: Path, espeak_runs: list[tuple[Any, ...]]
) -> None:
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    async with asyncio.timeout(STEP):
        made = await speak(SENTENCE, "en", "male", first_dir)
    assert len(espeak_runs) == 1
    (cached,) = first_dir.iterdir()  # espeak-ng's WAV, and no part file left behind
    second_dir.mkdir()
    shutil.copy(cached, second_dir / cached.name)
    cached.unlink()  # so a hit in memory can be told from a read

    async with asyncio.timeout(STEP):
        from_memory = await speak(SENTENCE, "en", "male", first_dir)
        from_disk = await speak(SENTENCE, "en", "male", second_dir)

    assert from_memory is made
    assert from_disk is not made and np.array_equal(from_disk, made)
    assert len(espeak_runs) == 1


async def test_requests_for_a_prompt_being_made_share_one_espeak_run(
    tmp_path: Path, espeak_runs: list[tuple[Any, ...]]
) -> None:
    async with asyncio.timeout(STEP):
        said = await asyncio.gather(*(speak(SENTENCE, "en", "male", tmp_path) for _ in range(5)))
    assert len(espeak_runs) == 1
    assert all(samples is said[0] for samples in said)


async def test_text_is_never_read_as_options(tmp_path: Path, espeak_runs: list[tuple[Any, ...]]) -> None:
    async with asyncio.timeout(STEP):
        samples = await speak("-w /tmp/nope --help", "en", "male", tmp_path)
    assert len(samples) > RATE // 2
    assert "--help" not in " ".join(map(str, espeak_runs[0]))


async def test_an_unknown_voice_is_named_in_the_error(tmp_path: Path) -> None:
    with pytest.raises(SpeechError, match=r"voice 'nosuchvoice\+m3': .*does not exist"):
        async with asyncio.timeout(STEP):
            await speak(SENTENCE, "nosuchvoice", "male", tmp_path)
    assert not list(tmp_path.iterdir())


async def test_without_espeak_ng_the_error_says_to_install_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(SpeechError, match=r"espeak-ng is not installed.*apt install espeak-ng"):
        async with asyncio.timeout(STEP):
            await speak(SENTENCE, "en", "male", tmp_path / "cache")
