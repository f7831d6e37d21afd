"""Sound devices as MediaSources lists them, on the JACK dummy server's sound card."""

from __future__ import annotations

import asyncio
import json

import pytest

from intercom.audio.devices import UnknownDevice, list_devices, media_sources, resolve
from intercom.audio.portaudio import PORTAUDIO
from intercom.audio.portaudio_adaptation import check_compatibility
from intercom.cli import main

from ..units import STEP


def test_the_jack_card_is_listed_in_both_directions_with_stable_ids(jack_server):
    devices = list_devices()
    inputs = [d for d in devices if d.kind == "audioinput"]
    outputs = [d for d in devices if d.kind == "audiooutput"]
    assert [d.label for d in inputs] == ["system (JACK Audio Connection Kit)"]
    assert [d.label for d in outputs] == ["system (JACK Audio Connection Kit)"]
    (microphone,), (speaker,) = inputs, outputs
    assert microphone.deviceId != speaker.deviceId and microphone.groupId == speaker.groupId
    assert list_devices() == devices  # the same ids every time
    assert resolve(microphone.deviceId, "audioinput") == microphone.index
    with pytest.raises(UnknownDevice, match="no audiooutput device"):
        resolve(microphone.deviceId, "audiooutput")
    assert media_sources(devices) == {
        "inputs": {"audio": [microphone.public()], "video": []},
        "outputs": {"audio": [speaker.public()]},
    }
    assert set(microphone.public()) == {"deviceId", "kind", "label", "groupId"}


def test_intercom_devices_lists_them(jack_server, capsys):
    assert main(["devices"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines] == ["in", "out"]
    assert all("system (JACK Audio Connection Kit)" in line and "48000 Hz" in line for line in lines)
    assert main(["devices", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["kind"] for d in listed["inputs"]["audio"]] == ["audioinput"]
    assert listed["inputs"]["video"] == [] and [d["kind"] for d in listed["outputs"]["audio"]] == ["audiooutput"]


async def test_settings_may_name_a_device_by_part_of_its_label(jack_server, probe):
    async with asyncio.timeout(STEP):
        assert await PORTAUDIO.rescan()  # the probe is a JACK client with ports: a device now too
    system = next(d for d in list_devices() if d.label.startswith("system") and d.kind == "audioinput")
    assert resolve("SYSTEM", "audioinput") == system.index  # any case
    several = r"'JACK' names several audioinput devices \('system .*', 'probe .*'\); use its id"
    with pytest.raises(UnknownDevice, match=several):
        resolve("JACK", "audioinput")
    with pytest.raises(UnknownDevice, match="no audiooutput device with id or name 'usb'"):
        resolve("usb", "audiooutput")


def test_portaudio_is_laid_out_as_the_jack_rescue_expects(jack_server):
    assert check_compatibility() == []  # else the rescue must not write into PortAudio: see its module
