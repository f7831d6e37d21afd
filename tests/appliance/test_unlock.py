"""The unlock guard on a simulated wall clock: who may open the door, attempts, and lockouts that
pacing cannot beat, remembered across restarts (a real SQLite store in a temporary directory)."""

from __future__ import annotations

import stat
import time
from pathlib import Path

import pytest

from intercom.appliance.unlock import (
    DAILY_CAP,
    DAY_S,
    FIRST_LOCKOUT_S,
    MAX_LOCKOUT_S,
    QUIET_S,
    WRONG_LIMIT,
    UnlockGuard,
    Verdict,
)
from intercom.appliance.unlock_store import STORE_NAME, AuditEntry, StateDirError, UnlockStore
from intercom.cli import main

CODE = "4711#"
CALL = "call-1@door"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def store(tmp_path):
    opened = UnlockStore.open(tmp_path)
    yield opened
    opened.close()


def guard_on(store: UnlockStore, clock: Clock, code: str = CODE, records: list[AuditEntry] | None = None):
    return UnlockGuard(code, store, ("desk",), clock, on_record=records.append if records is not None else None)


def keypad(guard: UnlockGuard, digits: str) -> list[Verdict]:
    return [guard.keypad(digit) for digit in digits]


def remote(guard: UnlockGuard, digits: str, identity: str | None = "desk") -> list[Verdict]:
    return [guard.remote_digit(digit, identity, CALL) for digit in digits]


def test_a_code_ending_in_hash_is_an_attempt_at_the_hash(store, clock):
    guard = guard_on(store, clock)
    assert keypad(guard, "4711#") == [Verdict.PENDING] * 4 + [Verdict.OPEN]
    assert keypad(guard, "99#") == [Verdict.PENDING, Verdict.PENDING, Verdict.WRONG]
    assert keypad(guard, "4711#")[-1] is Verdict.OPEN  # once per correct code, every time


def test_a_code_without_hash_is_an_attempt_every_so_many_digits(store, clock):
    guard = guard_on(store, clock, code="1234")
    pending = [Verdict.PENDING] * 3
    assert keypad(guard, "12351234") == [*pending, Verdict.WRONG, *pending, Verdict.OPEN]


def test_only_allowed_identities_may_open_from_a_call_and_never_a_call_nobody_is_asserted_on(store, clock, caplog):
    records: list[AuditEntry] = []
    guard = guard_on(store, clock, records=records)
    assert remote(guard, CODE, identity=None)[-1] is Verdict.REFUSED  # a flow of the hub's own (voicemail, say)
    assert remote(guard, CODE, identity="kitchen")[-1] is Verdict.REFUSED  # a client not in INTERCOM_UNLOCK_FROM
    assert guard.request(None, CALL) is Verdict.REFUSED
    assert guard.request("kitchen", CALL) is Verdict.REFUSED
    assert caplog.text.count("not in INTERCOM_UNLOCK_FROM") == 4
    assert remote(guard, CODE)[-1] is Verdict.OPEN
    assert guard.request("desk", CALL) is Verdict.OPEN
    assert [(r.verdict, r.who, r.source) for r in records] == [
        ("refused", None, "remote"), ("refused", "kitchen", "remote"), ("refused", None, "remote"),
        ("refused", "kitchen", "remote"), ("open", "desk", "remote"), ("open", "desk", "remote"),
    ]  # fmt: skip
    assert all(r.call_id == CALL for r in records)


def test_refused_attempts_are_not_judged_and_count_for_nothing(store, clock):
    guard = guard_on(store, clock)
    for _ in range(3 * DAILY_CAP):
        assert remote(guard, "0000#", identity=None)[-1] is Verdict.REFUSED
    assert guard.seconds_locked() == 0 and remote(guard, CODE)[-1] is Verdict.OPEN


def test_five_wrong_codes_lock_the_counter_for_five_minutes_even_against_the_right_code(store, clock, caplog):
    records: list[AuditEntry] = []
    guard = guard_on(store, clock, records=records)
    for _ in range(WRONG_LIMIT - 1):
        assert keypad(guard, "2#")[-1] is Verdict.WRONG
        clock.now += 60
    assert guard.seconds_locked() == 0
    assert keypad(guard, "3#")[-1] is Verdict.WRONG
    assert guard.seconds_locked() == FIRST_LOCKOUT_S and "unlock lockout for keypad" in caplog.text
    assert records[-1].verdict == "lockout" and records[-1].source == "keypad"
    assert keypad(guard, CODE)[-1] is Verdict.LOCKED  # even the right code
    clock.now += FIRST_LOCKOUT_S - 1
    assert keypad(guard, CODE)[-1] is Verdict.LOCKED
    clock.now += 1
    assert guard.seconds_locked() == 0 and keypad(guard, CODE)[-1] is Verdict.OPEN


def lock_keypad(guard: UnlockGuard, clock: Clock) -> float:
    """Five wrong codes a second apart; how long the lockout they cause lasts."""
    for _ in range(WRONG_LIMIT):
        assert keypad(guard, "9#")[-1] is Verdict.WRONG
        clock.now += 1
    return guard.seconds_locked() + 1


def test_each_further_lockout_doubles_up_to_an_hour_and_a_quiet_day_starts_again(store, clock):
    guard = guard_on(store, clock)
    started = clock.now

    def lockouts(count: int) -> list[float]:
        lasted = []
        for _ in range(count):
            lasted.append(lock_keypad(guard, clock))
            clock.now += lasted[-1]
        return lasted

    assert lockouts(3) == [FIRST_LOCKOUT_S, 2 * FIRST_LOCKOUT_S, 4 * FIRST_LOCKOUT_S]
    # A day after those wrong codes (out of the daily cap's reach), but not a quiet day after the
    # last lockout ended: the escalation goes on, and stops at an hour.
    clock.now = started + DAY_S + 16 * 60
    assert lockouts(3) == [8 * FIRST_LOCKOUT_S, MAX_LOCKOUT_S, MAX_LOCKOUT_S] and MAX_LOCKOUT_S == 60 * 60
    clock.now += QUIET_S  # a quiet day: from the first again
    assert lockouts(1) == [FIRST_LOCKOUT_S]


def test_one_wrong_code_every_13_s_for_a_day_opens_nothing_and_hits_the_cap(store, clock):
    """The pacing that beat the old lockout: the guesser walks through every code from 0000#,
    trying a guess again until it is judged."""
    guard = guard_on(store, clock, code="0042#")  # the 43rd guess would open
    judged: list[str] = []
    end = clock.now + DAY_S
    while clock.now < end:
        guess = f"{len(judged):04}#"
        verdict = keypad(guard, guess)[-1]
        assert verdict is not Verdict.OPEN
        if verdict is Verdict.WRONG:
            judged.append(guess)
        clock.now += 13
    assert len(judged) == DAILY_CAP  # at most the cap was even judged; the rest met a lockout
    assert [entry.verdict for entry in store.latest(100)].count("wrong") == DAILY_CAP


def test_five_hashes_at_the_keypad_leave_the_desks_code_and_request_working(store, clock):
    guard = guard_on(store, clock)
    for _ in range(WRONG_LIMIT):
        assert keypad(guard, "#")[-1] is Verdict.WRONG
    assert keypad(guard, CODE)[-1] is Verdict.LOCKED
    assert remote(guard, CODE)[-1] is Verdict.OPEN  # the desk's own counter
    assert guard.request("desk", CALL) is Verdict.OPEN


def test_the_desks_wrong_codes_lock_out_the_desks_codes_but_never_its_request(store, clock):
    guard = guard_on(store, clock)
    for _ in range(WRONG_LIMIT):
        assert remote(guard, "1111#")[-1] is Verdict.WRONG
    assert remote(guard, CODE)[-1] is Verdict.LOCKED
    assert keypad(guard, CODE)[-1] is Verdict.OPEN  # the keypad is a counter of its own
    assert guard.request("desk", CALL) is Verdict.OPEN  # no guess: identity, not a code


def test_home_assistant_opens_only_a_door_that_names_its_source(store, clock):
    records: list[AuditEntry] = []
    named = UnlockGuard(CODE, store, ("desk", "source:home_assistant"), clock, on_record=records.append)
    assert named.request_from_source("home_assistant") is Verdict.OPEN
    assert (records[-1].source, records[-1].who, records[-1].call_id, records[-1].verdict) == (
        "remote",
        "home assistant",
        None,
        "open",
    )
    assert records[-1].detail == "unlock request (home assistant through the hub)"
    assert named.request("home_assistant", CALL) is Verdict.REFUSED  # an identity of that name is not the source
    assert named.request_from_source("node_red") is Verdict.REFUSED  # no such source
    assert named.request_from_source(None) is Verdict.REFUSED
    default = guard_on(store, clock, records=records)  # allow-list ("desk",): HA is not named
    assert default.request_from_source("home_assistant") is Verdict.REFUSED
    assert (records[-1].who, records[-1].verdict) == ("home assistant", "refused")


def test_a_restart_remembers_a_lockout_and_the_days_wrong_codes(tmp_path, clock):
    first = UnlockStore.open(tmp_path)
    lock_keypad(guard_on(first, clock), clock)
    first.close()
    again = UnlockStore.open(tmp_path)  # the unit restarted: a new guard on the same store
    try:
        guard = guard_on(again, clock)
        assert guard.seconds_locked() > 0 and keypad(guard, CODE)[-1] is Verdict.LOCKED
        clock.now += FIRST_LOCKOUT_S
        assert lock_keypad(guard, clock) == 2 * FIRST_LOCKOUT_S  # the escalation carried on
        assert [entry.verdict for entry in again.latest(3)] == ["lockout", "wrong", "wrong"]
    finally:
        again.close()


def test_the_audit_log_keeps_who_which_call_and_the_verdict_newest_first(store, clock):
    guard = guard_on(store, clock)
    keypad(guard, "1234#")
    clock.now += 1
    remote(guard, CODE)
    clock.now += 1
    guard.request("kitchen", "call-2@door")
    assert store.latest(10) == [
        AuditEntry(clock.now, "remote", "kitchen", "call-2@door", "refused", "an unlock request", ""),
        AuditEntry(clock.now - 1, "remote", "desk", CALL, "open", "code", "remote:desk"),
        AuditEntry(clock.now - 2, "keypad", "keypad", None, "wrong", "code", "keypad"),
    ]
    assert store.latest(1)[0].verdict == "refused"


def test_reset_forgets_a_half_typed_remote_attempt_but_not_the_keypads(store, clock):
    guard = guard_on(store, clock)
    remote(guard, "47")
    keypad(guard, "47")
    guard.reset()
    assert remote(guard, CODE)[-1] is Verdict.OPEN
    assert keypad(guard, "11#")[-1] is Verdict.OPEN  # 47 + 11#: the keypad's half was kept


def test_a_key_held_down_does_not_grow_without_bound(store, clock):
    guard = guard_on(store, clock)
    assert set(keypad(guard, "1" * 1000)) == {Verdict.PENDING}
    assert guard.keypad("#") is Verdict.WRONG  # a thousand 1s then # is not the code
    assert keypad(guard, CODE)[-1] is Verdict.OPEN


def test_the_store_is_private_and_a_bad_state_dir_is_named(tmp_path):
    UnlockStore.open(tmp_path).close()
    assert stat.S_IMODE((tmp_path / STORE_NAME).stat().st_mode) == 0o600
    (tmp_path / STORE_NAME).chmod(0o644)  # widened by hand: narrowed again
    UnlockStore.open(tmp_path).close()
    assert stat.S_IMODE((tmp_path / STORE_NAME).stat().st_mode) == 0o600
    with pytest.raises(StateDirError, match=r"^INTERCOM_STATE_DIR: .*/missing is not a directory"):
        UnlockStore.open(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(StateDirError, match="INTERCOM_STATE_DIR"):
        UnlockStore.open(tmp_path / "file")


def test_a_store_that_is_not_sqlite_is_a_clear_error_and_is_left_alone(tmp_path):
    (tmp_path / STORE_NAME).write_bytes(b"not a database" * 100)
    with pytest.raises(StateDirError, match=r"^INTERCOM_STATE_DIR: cannot keep the unlock log in .*: "):
        UnlockStore.open(tmp_path)
    assert (tmp_path / STORE_NAME).read_bytes() == b"not a database" * 100


def env_file(tmp_path, state_dir) -> Path:
    path = tmp_path / "intercom.env"
    values = {
        "INTERCOM_ROLE": "door", "INTERCOM_IDENTITY": "door", "INTERCOM_HUB_URL": "wss://desk.local:8443",
        "INTERCOM_ACCESS_KEY_ID": "k", "INTERCOM_ACCESS_KEY": "s", "INTERCOM_UNLOCK_CODE": CODE,
        "INTERCOM_STATE_DIR": str(state_dir),
    }  # fmt: skip
    path.write_text("".join(f"{name}={value}\n" for name, value in values.items()))
    path.chmod(0o600)
    return path


def test_unlocks_list_prints_the_log_newest_first_in_local_time(tmp_path, store, clock, capsys, monkeypatch):
    monkeypatch.delenv("INTERCOM_STATE_DIR")  # the env file says where
    guard = guard_on(store, clock)
    keypad(guard, "1234#")
    clock.now += 60
    guard.request("desk", CALL)
    clock.now += 60
    remote(guard, CODE, identity=None)
    assert main(["unlocks", "list", "--env-file", str(env_file(tmp_path, tmp_path))]) == 0
    lines = capsys.readouterr().out.splitlines()
    at = [time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(clock.now - seconds)) for seconds in (0, 60, 120)]
    assert lines == [
        f"{at[0]}  refused   remote  (nobody asserted: the hub's own call)  call {CALL}  (a code)",
        f"{at[1]}  open      remote  desk  call {CALL}  (unlock request)",
        f"{at[2]}  wrong     keypad  keypad  (code)",
    ]
    assert main(["unlocks", "list", "--env-file", str(env_file(tmp_path, tmp_path)), "--limit", "1"]) == 0
    assert capsys.readouterr().out.splitlines() == lines[:1]


def test_unlocks_list_before_the_door_ever_started_and_with_a_bad_limit(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("INTERCOM_STATE_DIR")  # the env file says where
    path = env_file(tmp_path, tmp_path)
    assert main(["unlocks", "list", "--env-file", str(path)]) == 0
    never = f"no unlock log in {tmp_path} (INTERCOM_STATE_DIR): this door has not started yet\n"
    assert capsys.readouterr().out == never
    assert not (tmp_path / STORE_NAME).exists()  # not made by the command: it belongs to the service's user
    assert main(["unlocks", "list", "--env-file", str(path), "--limit", "0"]) == 2
    assert capsys.readouterr().err == "intercom unlocks: --limit must be 1 or more\n"
