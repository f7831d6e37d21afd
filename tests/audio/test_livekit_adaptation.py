"""intercom.audio.livekit_adaptation: livekit's frame calls with a request serialised once, against the
module's own calls, bit for bit; and the livekit it was checked against."""

from __future__ import annotations

import importlib.metadata
from functools import partial
from types import SimpleNamespace

import numpy as np
import pytest
from livekit import rtc

from intercom.audio.livekit_adaptation import TESTED_WITH, FrameCall

RATE = 48_000
FRAME = RATE // 100


def test_the_installed_livekit_is_the_one_the_adaptation_was_checked_against() -> None:
    installed = importlib.metadata.version("livekit")
    checked = TESTED_WITH["livekit"]
    assert installed == checked, f"livekit {installed}, checked against {checked}: read the module, run tests/audio"


def echo_and_voice(frames: int) -> tuple[np.ndarray, np.ndarray]:
    """A far end (noise bursts) and a microphone hearing it 30 ms later, 10 dB down, over a quieter near voice."""
    rng = np.random.default_rng(15)
    far = rng.normal(0, 3000, frames * FRAME) * np.repeat(rng.random(frames) > 0.3, FRAME)
    delay = 30 * RATE // 1000
    microphone = 0.3 * np.concatenate([np.zeros(delay), far[:-delay]]) + rng.normal(0, 300, frames * FRAME)
    return far.astype(np.int16), microphone.astype(np.int16)


def processed(far: np.ndarray, microphone: np.ndarray, adapted: bool) -> np.ndarray:
    apm = rtc.AudioProcessingModule(
        echo_cancellation=True, noise_suppression=True, high_pass_filter=True, auto_gain_control=True
    )
    buffers = bytearray(FRAME * 2), bytearray(FRAME * 2)
    reference, capture = (np.frombuffer(buffer, dtype=np.int16) for buffer in buffers)
    if adapted:
        render = FrameCall(apm, "apm_process_reverse_stream", buffers[0], RATE)
        process = FrameCall(apm, "apm_process_stream", buffers[1], RATE)
    else:
        frames = [rtc.AudioFrame(buffer, RATE, 1, FRAME) for buffer in buffers]
        render = partial(apm.process_reverse_stream, frames[0])
        process = partial(apm.process_stream, frames[1])
    out = np.empty_like(microphone)
    apm.set_stream_delay_ms(40)
    for start in range(0, len(microphone), FRAME):
        reference[:] = far[start : start + FRAME]
        render()
        capture[:] = microphone[start : start + FRAME]
        process()
        out[start : start + FRAME] = capture
    return out


def test_the_frame_calls_give_the_modules_own_output_bit_for_bit() -> None:
    far, microphone = echo_and_voice(300)
    ours = processed(far, microphone, adapted=True)
    assert np.array_equal(ours, processed(far, microphone, adapted=False))
    power = [float(np.mean(np.square(signal[-100 * FRAME :], dtype=np.float64))) for signal in (microphone, ours)]
    assert power[1] < power[0] / 10  # and it did process: the echo is down by more than 10 dB


@pytest.mark.parametrize(
    ("call", "size", "message"),
    [
        ("apm_process_stream", 400, "400 bytes are not whole 10 ms frames of 960 bytes"),
        ("apm_process_stream", 0, "0 bytes are not whole 10 ms frames"),
        ("apm_set_stream_delay", 960, "'apm_set_stream_delay' is not one of the module's frame calls"),
    ],
)
def test_a_buffer_or_call_the_library_cannot_take_is_refused_before_it_aborts(call: str, size: int, message: str):
    with pytest.raises(ValueError, match=message):
        FrameCall(rtc.AudioProcessingModule(), call, bytearray(size), RATE)


def test_a_call_the_library_refuses_raises() -> None:
    rtc.AudioProcessingModule()  # livekit's FFI client started
    unknown = SimpleNamespace(_ffi_handle=SimpleNamespace(handle=987_654_321))
    call = FrameCall(unknown, "apm_process_stream", bytearray(FRAME * 2), RATE)
    with pytest.raises(RuntimeError, match="livekit's FFI refused apm_process_stream"):
        call()
