"""``intercom audio-test`` on the JACK card: it records what the microphone hears and plays it back."""

from __future__ import annotations

import asyncio

import pytest

from intercom.audio.audio_test import SILENT_DBFS, dbfs, meter, run_audio_test
from intercom.cli import main

from ..units import STEP


async def test_it_records_the_microphone_and_plays_it_back(probe):
    lines: list[str] = []
    probe.play(440.0)
    tested = asyncio.ensure_future(asyncio.to_thread(run_audio_test, 1.0, None, None, lines.append))
    probe.feed(await probe.wait_for_port(is_input=True, timeout=STEP))  # the recording's input port
    probe.listen(await probe.wait_for_port(is_input=False, timeout=STEP))  # then the playback's
    await probe.wait_until(lambda: probe.dominant_frequency(0.3) == pytest.approx(440.0, abs=10), STEP)
    async with asyncio.timeout(STEP):
        level = await tested
    assert -20 < level < 0  # the probe plays at 0.3 of full scale: about -13.5 dBFS
    assert lines[0].startswith("recording 1 s from system: speak now")
    meters = [line for line in lines if line.startswith("[")]
    assert len(meters) >= 45 and "#" in meters[-1]  # one per 20 ms block, and sound in them
    assert lines[-2].startswith("playing it back on system") and lines[-1] == "done"


async def test_silence_is_called_out(probe):
    lines: list[str] = []
    async with asyncio.timeout(STEP):
        level = await asyncio.to_thread(run_audio_test, 0.2, None, None, lines.append)
    assert level < SILENT_DBFS and any(line.startswith("no sound came in") for line in lines)


def test_bad_arguments_are_refused_with_the_reason(jack_server, capsys):
    assert main(["audio-test", "--microphone", "nope"]) == 2
    assert "no audioinput device with id or name 'nope'" in capsys.readouterr().err
    assert main(["audio-test", "--seconds", "0"]) == 2
    assert main(["audio-test", "--device", "usb"]) == 2  # one card named for both ways: the microphone first
    assert "no audioinput device with id or name 'usb'" in capsys.readouterr().err


def test_levels_and_the_meter():
    import numpy as np

    full = np.full(960, 32767, dtype=np.int16)
    assert dbfs(full) == pytest.approx(0.0, abs=0.01)
    assert dbfs(np.zeros(960, dtype=np.int16)) == float("-inf")
    assert meter(-30.0) == "[" + "#" * 20 + "." * 20 + "] -30.0 dBFS"
    assert meter(float("-inf")).startswith("[" + "." * 40 + "]")


def test_one_card_named_by_part_of_its_name_serves_both_ways(jack_server, capsys):
    assert main(["audio-test", "--device", "SYSTEM", "--seconds", "0.2"]) == 0
    out = capsys.readouterr().out
    assert "recording 0.2 s from system: speak now" in out and "playing it back on system" in out
