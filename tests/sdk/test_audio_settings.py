"""A unit's sound from INTERCOM_AUDIO_* variables or an env file: values checked when read."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from intercom.media import ToneSource
from intercom.media.tones import PLANS
from intercom.sdk.audio_settings import AudioSettings

from ..listening import write_wav


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    for name in ("MICROPHONE", "SPEAKER", "MICROPHONE_GAIN", "SPEAKER_GAIN", "REGION", "RING_FILE", "TONES"):
        monkeypatch.delenv(f"INTERCOM_AUDIO_{name}", raising=False)


def test_defaults_are_the_system_devices_at_unity_gain_with_european_tones():
    settings = AudioSettings()
    assert (settings.microphone, settings.speaker, settings.microphone_gain, settings.speaker_gain) == (
        None,
        None,
        1.0,
        1.0,
    )
    audio = settings.call_audio()
    assert audio.tones is PLANS["eu"] and audio.ring is None


def test_an_env_file_sets_devices_gains_and_tones(tmp_path: Path, monkeypatch):
    write_wav(tmp_path / "ring.wav", 0.25)
    env = tmp_path / "intercom.env"
    env.write_text(
        "INTERCOM_AUDIO_MICROPHONE=USB Audio\n"
        "INTERCOM_AUDIO_SPEAKER=  \n"
        "INTERCOM_AUDIO_MICROPHONE_GAIN=2.5\n"
        "INTERCOM_AUDIO_SPEAKER_GAIN=0.5\n"
        "INTERCOM_AUDIO_REGION=UK\n"
        f"INTERCOM_AUDIO_RING_FILE={tmp_path / 'ring.wav'}\n"
        "INTERCOM_OTHER_SETTING=left for the appliance\n"
    )
    monkeypatch.setenv("INTERCOM_AUDIO_SPEAKER_GAIN", "0.75")  # the environment wins over the file
    settings = AudioSettings(_env_file=env)
    assert settings.microphone == "USB Audio" and settings.speaker is None
    assert (settings.microphone_gain, settings.speaker_gain, settings.region) == (2.5, 0.75, "uk")
    audio = settings.call_audio()
    assert audio.tones is PLANS["uk"] and audio.ring is not None and len(audio.ring.pcm) == 12000


def test_the_playout_reaches_the_speaker(monkeypatch):
    assert AudioSettings().call_audio().sink(ToneSource(440.0)).playout_ms == 30
    monkeypatch.setenv("INTERCOM_AUDIO_PLAYOUT_MS", "20")
    assert AudioSettings().call_audio().sink(ToneSource(440.0)).playout_ms == 20


def test_tones_can_be_turned_off(monkeypatch):
    monkeypatch.setenv("INTERCOM_AUDIO_TONES", "false")
    assert AudioSettings().call_audio().tones is None


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("INTERCOM_AUDIO_MICROPHONE_GAIN", "150", "less than or equal to 16"),
        ("INTERCOM_AUDIO_SPEAKER_GAIN", "-1", "greater than or equal to 0"),
        ("INTERCOM_AUDIO_SPEAKER_GAIN", "loud", "valid number"),
        ("INTERCOM_AUDIO_REGION", "xx", "no tone plan for region 'xx'"),
        ("INTERCOM_AUDIO_RING_FILE", "/nonexistent/ring.wav", "cannot play /nonexistent/ring.wav"),
        ("INTERCOM_AUDIO_TONES", "perhaps", "valid boolean"),
        ("INTERCOM_AUDIO_PLAYOUT_MS", "45", "less than or equal to 40"),
    ],
)
def test_a_bad_value_is_refused_naming_the_setting(monkeypatch, variable, value, message):
    monkeypatch.setenv(variable, value)
    with pytest.raises(ValidationError) as refused:
        AudioSettings()
    (error,) = refused.value.errors()
    assert error["loc"] == (variable.removeprefix("INTERCOM_AUDIO_").lower(),)
    assert message in str(refused.value)
