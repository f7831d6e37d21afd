"""A unit's sound as settings: devices, gains and tones, from the environment or an env file.

Variables are prefixed ``INTERCOM_AUDIO_`` (``INTERCOM_AUDIO_MICROPHONE=USB``,
``INTERCOM_AUDIO_SPEAKER_GAIN=1.5``, ...), so that they sit in the appliance's one env file next to
its other settings. A value that cannot work (a gain out of range, a region without a tone plan, a
ring file that does not play) is refused when the settings are read, naming the variable, rather
than when the first call rings. Devices are only looked up when a call opens them: a card that is
unplugged at start-up is not a configuration error.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from ..audio.processing import ProcessingSettings
from ..audio.samples import MIN_PLAYOUT_MS, PLAYBACK_BUFFER_MS, PLAYOUT_MS
from ..media.policy import MediaPolicy
from ..media.tones import SoundFile, WavError, plan_for
from .media import CallAudio

MAX_GAIN = 16.0  # +24 dB: more than any microphone needs; a typo like 150 must not deafen anyone


class AudioSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="INTERCOM_AUDIO_", extra="ignore")

    microphone: str | None = Field(None, description="capture device: an id or part of a name from `intercom devices`")
    speaker: str | None = Field(None, description="playback device: an id or part of a name from `intercom devices`")
    microphone_gain: float = Field(1.0, ge=0.0, le=MAX_GAIN, description="software gain, a factor (1.0: as captured)")
    speaker_gain: float = Field(1.0, ge=0.0, le=MAX_GAIN, description="software gain, a factor (1.0: as received)")
    region: str = Field("eu", description="tone plan for ringback, busy and congestion: eu, nl, uk or us")
    ring_file: Path | None = Field(None, description="a sound file to ring with instead of the built-in ring")
    tones: bool = Field(True, description="play ringback, ring, busy and key tones on the speaker")
    echo_cancellation: bool = Field(True, description="cancel the speaker's echo in what the microphone sends (AEC3)")
    noise_suppression: bool = Field(True, description="push down steady noise (traffic, wind, hum) in what is sent")
    auto_gain: bool = Field(True, description="even out the level of the voice sent: close to the unit or a step away")
    high_pass_filter: bool = Field(True, description="take out rumble below ~80 Hz before the rest")
    playout_ms: int = Field(
        PLAYOUT_MS,
        ge=MIN_PLAYOUT_MS,
        le=PLAYBACK_BUFFER_MS,
        description="received audio the speaker holds before it plays, ms: 20 is 20 ms less delay, "
        "for a wired LAN (a late frame drops out)",
    )

    @field_validator("microphone", "speaker")
    @classmethod
    def _blank_is_default(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("region")
    @classmethod
    def _known_region(cls, value: str) -> str:
        return plan_for(value).region

    @field_validator("ring_file", mode="before")
    @classmethod
    def _blank_is_built_in(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("ring_file")
    @classmethod
    def _playable(cls, value: Path | None) -> Path | None:
        if value is not None:
            try:
                SoundFile.read(value)
            except WavError as exc:
                raise ValueError(str(exc)) from None
        return value

    def call_audio(self, policy: MediaPolicy | None = None) -> CallAudio:
        """The :class:`CallAudio` these settings describe, for ``Client(audio=...)``."""
        return CallAudio.sound_card(
            microphone=self.microphone,
            speaker=self.speaker,
            microphone_gain=self.microphone_gain,
            speaker_gain=self.speaker_gain,
            policy=policy,
            region=self.region,
            ring_file=self.ring_file,
            tones=self.tones,
            processing=self.processing,
            playout_ms=self.playout_ms,
        )

    @property
    def processing(self) -> ProcessingSettings:
        return ProcessingSettings(
            echo_cancellation=self.echo_cancellation,
            noise_suppression=self.noise_suppression,
            auto_gain=self.auto_gain,
            high_pass_filter=self.high_pass_filter,
        )
