"""``intercom storage``: what the data directory holds and its limits; a pruned recording in
``calls show``."""

from __future__ import annotations

from intercom.cli import main
from intercom.hub import Storage
from intercom.hub.call_log import CallLog
from intercom.hub.retention import Retention, StorageLimits

from ..hub.api.call_log import door_call


async def test_storage_shows_the_rows_the_recordings_by_kind_the_free_space_and_the_limits(tmp_path, capsys):
    storage = Storage(tmp_path)
    await door_call(storage)
    size = sum(path.stat().st_size for path in (tmp_path / "recordings").rglob("*.wav"))
    assert main(["storage", "--data-dir", str(tmp_path), "--recordings-quota-mb", "5", "--calls-max-rows", "7"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"data directory {tmp_path}: ") and " MB free of " in lines[0]
    assert "calls 1, legs 3, recordings 1, webhooks 0, webhook_deliveries 0" in lines[1]
    assert (
        lines[2] == f"recordings {size / (1 << 20):.1f} MB of 5.0 MB: transfer 1 ({size / (1 << 20):.1f} MB); 0 pruned"
    )
    assert "  recordings quota 5 MB (recordings_quota_mb); pruned first: call, transfer, ivr" in lines
    assert "  calls kept 365 days (calls_max_age_days), at most 7 (calls_max_rows)" in lines


async def test_a_pruned_recording_is_counted_and_calls_show_says_so(tmp_path, capsys):
    storage = Storage(tmp_path)
    call = await door_call(storage)
    await Retention(storage, CallLog(storage), StorageLimits(recordings_quota_bytes=1)).prune()
    assert main(["storage", "--data-dir", str(tmp_path)]) == 0
    assert "none; 1 pruned" in capsys.readouterr().out
    assert main(["calls", "show", call.call.id, "--data-dir", str(tmp_path)]) == 0
    shown = capsys.readouterr().out
    assert f"leg {call.desk.id}  (pruned " in shown and ": the recordings quota)" in shown


def test_storage_of_a_folder_without_a_hub_database_is_refused(tmp_path, capsys):
    assert main(["storage", "--data-dir", str(tmp_path)]) == 2
    assert "no hub database there" in capsys.readouterr().err
