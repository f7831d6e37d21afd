"""A desk hosting the hub on an SD card gone read-only: it starts, connects, and ``systemctl
status`` says the call log is not written. The card is a tmpfs in a mount namespace of the unit's
own (``unshare --user --map-root-user --mount``: no root needed), prepared by a first start's
worth of writes (the env file's key, the default flows), then remounted read-only."""

from __future__ import annotations

import socket

import pytest

from intercom.auth.keys import new_key_id, new_key_secret

from ..hub.test_storage_faults import namespaces_work
from .test_service import received, run_until_connected

# Runs its arguments (the appliance) on a fresh tmpfs at $INTERCOM_HUB_DATA_DIR made read-only
# once the database holds what the unit needs.
PREPARE = (
    "from pathlib import Path; import os; from intercom.appliance.settings import load_settings; "
    "from intercom.appliance.embedded_hub import prepare_storage; from intercom.hub import Storage, blocking; "
    "settings, _ = load_settings(Path(os.environ['ENV_FILE'])); storage = Storage(settings.hub_data_dir); "
    "blocking(prepare_storage(storage, settings)); storage.close()"
)
READ_ONLY_CARD = (
    'mount -t tmpfs -o size=16m,mode=0700 tmpfs "$INTERCOM_HUB_DATA_DIR" && "$0" -c "$PREPARE" '
    '&& mount -o remount,ro "$INTERCOM_HUB_DATA_DIR" && exec "$0" "$@"'
)


@pytest.mark.skipif(not namespaces_work(), reason="unshare --user --mount is not allowed here")
async def test_a_desk_on_a_read_only_card_connects_and_systemd_shows_the_fault(tmp_path):
    data_dir = tmp_path / "card"
    data_dir.mkdir()
    values = {
        "INTERCOM_ROLE": "desk", "INTERCOM_IDENTITY": "desk", "INTERCOM_HUB_EMBEDDED": "true",
        "INTERCOM_HUB_LISTEN": "127.0.0.1", "INTERCOM_HUB_PORT": "0", "INTERCOM_HUB_DATA_DIR": str(data_dir),
        "INTERCOM_ACCESS_KEY_ID": new_key_id(), "INTERCOM_ACCESS_KEY": new_key_secret(),
        "INTERCOM_STATE_DIR": str(tmp_path), "INTERCOM_AUDIO_TONES": "false",
    }  # fmt: skip
    env_file = tmp_path / "intercom.env"
    env_file.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    env_file.chmod(0o600)
    systemd = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)  # plays systemd's notify socket
    systemd.bind(str(tmp_path / "notify"))
    systemd.setblocking(False)
    wrapper = ["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", READ_ONLY_CARD]
    env = {
        "NOTIFY_SOCKET": str(tmp_path / "notify"), "INTERCOM_HUB_DATA_DIR": str(data_dir),
        "ENV_FILE": str(env_file), "PREPARE": PREPARE,
    }  # fmt: skip
    lines, _ = await run_until_connected(env_file, env, wrapper)
    told = received(systemd)
    assert f"STATUS=desk desk: connected; call log not written ({data_dir} is read-only)" in told, told
    assert any("call log not written" in line for line in lines)
