"""The unlock code: attempts, one opening per correct code, and the lockout after five wrong ones."""

from __future__ import annotations

import pytest

from intercom.appliance.unlock import LOCKOUT_S, UnlockGuard, Verdict


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def typed(guard: UnlockGuard, digits: str) -> list[Verdict]:
    return [guard.digit(digit) for digit in digits]


def test_a_code_ending_in_hash_is_an_attempt_at_the_hash():
    guard = UnlockGuard("4711#")
    assert typed(guard, "4711#") == [Verdict.PENDING] * 4 + [Verdict.OPEN]
    assert typed(guard, "99#") == [Verdict.PENDING, Verdict.PENDING, Verdict.WRONG]
    assert typed(guard, "4711#")[-1] is Verdict.OPEN  # once per correct code, every time


def test_a_code_without_hash_is_an_attempt_every_so_many_digits():
    guard = UnlockGuard("123")
    pending = [Verdict.PENDING, Verdict.PENDING]
    assert typed(guard, "124123") == [*pending, Verdict.WRONG, *pending, Verdict.OPEN]


def test_five_wrong_codes_in_a_minute_lock_the_door_for_five_minutes(caplog):
    clock = Clock()
    guard = UnlockGuard("1#", clock)
    for _ in range(4):
        assert typed(guard, "2#")[-1] is Verdict.WRONG
        clock.now += 10
    assert not guard.locked
    assert typed(guard, "3#")[-1] is Verdict.WRONG
    assert guard.locked and "5 wrong unlock codes within a minute" in caplog.text
    assert typed(guard, "1#")[-1] is Verdict.LOCKED  # even the right code
    clock.now += LOCKOUT_S - 1
    assert typed(guard, "1#")[-1] is Verdict.LOCKED
    clock.now += 1
    assert not guard.locked and typed(guard, "1#")[-1] is Verdict.OPEN


def test_wrong_codes_spread_over_more_than_a_minute_do_not_lock():
    clock = Clock()
    guard = UnlockGuard("1#", clock)
    for _ in range(10):
        assert typed(guard, "2#")[-1] is Verdict.WRONG
        clock.now += 16  # five take 64 s
    assert not guard.locked and typed(guard, "1#")[-1] is Verdict.OPEN


@pytest.mark.parametrize("code", ["1#", "4711"])
def test_reset_forgets_a_half_typed_attempt(code):
    guard = UnlockGuard(code)
    guard.digit(code[0])
    guard.reset()
    assert typed(guard, code)[-1] is Verdict.OPEN


def test_a_key_held_down_does_not_grow_without_bound():
    guard = UnlockGuard("1#")
    assert set(typed(guard, "1" * 1000)) == {Verdict.PENDING}
    assert guard.digit("#") is Verdict.WRONG  # a thousand 1s then # is not the code
    assert typed(guard, "1#")[-1] is Verdict.OPEN
