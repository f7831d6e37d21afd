"""The data directory is the hub's user's alone: at each start every folder becomes 0700 and every
file 0600 at most, whatever an older version or a hand left there, and what changed is logged."""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

from intercom.auth.certificates import CERT_NAME, KEY_NAME
from intercom.hub.file_modes import make_private
from intercom.hub.storage import DATABASE_NAME
from intercom.media.recorder import WavRecorder

REPOSITORY = Path(__file__).resolve().parents[2]


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


def wide_data_dir(data_dir: Path) -> None:
    """A data directory as an older version left it under umask 022: 0755 folders, 0644 files."""
    (data_dir / "recordings").mkdir(parents=True)
    for name in ("recordings/old-voicemail.wav", CERT_NAME, KEY_NAME):
        (data_dir / name).write_bytes(b"personal")
        (data_dir / name).chmod(0o644)
    for folder in (data_dir, data_dir / "recordings"):
        folder.chmod(0o755)


@pytest.fixture
def hub_config(hub_config):
    wide_data_dir(hub_config.data_dir)
    return hub_config


async def test_the_hub_makes_an_existing_wide_data_directory_private_at_start(hub):
    data_dir = hub.running.config.data_dir
    for folder in (data_dir, data_dir / "recordings"):
        assert mode(folder) == 0o700, folder
    files = [
        "recordings/old-voicemail.wav",
        CERT_NAME,
        KEY_NAME,
        DATABASE_NAME,
        f"{DATABASE_NAME}-wal",
        f"{DATABASE_NAME}-shm",
    ]
    for name in files:
        assert mode(data_dir / name) == 0o600, name
    assert (data_dir / "recordings" / "old-voicemail.wav").read_bytes() == b"personal"  # only the mode changed


def test_what_is_changed_is_logged_and_what_is_private_left_alone(tmp_path, caplog):
    data_dir = tmp_path / "hub"
    wide_data_dir(data_dir)
    (data_dir / "already.txt").write_bytes(b"")
    (data_dir / "already.txt").chmod(0o600)
    outside = tmp_path / "shared.wav"  # reached through a link: not the hub's to change
    outside.write_bytes(b"")
    outside.chmod(0o644)
    (data_dir / "recordings" / "linked.wav").symlink_to(outside)
    with caplog.at_level(logging.WARNING, logger="intercom.hub.file_modes"):
        narrowed = make_private(data_dir)
    assert {(str(item.path.relative_to(data_dir)), item.before, item.after) for item in narrowed} == {
        (".", 0o755, 0o700),
        ("recordings", 0o755, 0o700),
        ("recordings/old-voicemail.wav", 0o644, 0o600),
        (CERT_NAME, 0o644, 0o600),
        (KEY_NAME, 0o644, 0o600),
    }
    assert mode(outside) == 0o644 and mode(data_dir / "already.txt") == 0o600
    (line,) = caplog.messages
    assert line.startswith(f"data directory {data_dir}: made private to the hub's user: ")
    assert "recordings/old-voicemail.wav 644->600" in line
    assert make_private(data_dir) == []  # nothing left to do: nothing logged again


def test_a_new_recording_is_private_whatever_the_umask(tmp_path):
    previous = os.umask(0o022)
    try:
        recorder = WavRecorder(tmp_path / "voicemail.wav")
    finally:
        os.umask(previous)
    assert mode(recorder.path) == 0o600
    recorder.abort()


def test_the_service_writes_with_umask_0077():
    lines = (REPOSITORY / "deploy" / "intercom.service").read_text().splitlines()
    assert "UMask=0077" in lines and "StateDirectoryMode=0700" in lines
