"""The supervisor's restart backoff: at once after a death, then 1, 2, 4 ... 30 s while the process keeps dying soon."""

from __future__ import annotations

from slipway.deploy.supervisor import MAX_BACKOFF_S, STABLE_AFTER_S, Backoff, backoff_s


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_s(n) for n in range(8)] == [0.0, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_S, MAX_BACKOFF_S]


def test_a_first_death_restarts_at_once_and_quick_deaths_wait_longer_each_time() -> None:
    b = Backoff()
    assert b.due("stable", pid=10, now=100.0)
    b.restarted("stable", now=100.0)
    assert not b.due("stable", pid=11, now=102.0)  # died 2 s after its restart: waits 1 s
    assert b.wait_s("stable", now=102.0) == 1.0
    assert b.due("stable", pid=11, now=103.0)
    b.restarted("stable", now=103.0)
    assert not b.due("stable", pid=12, now=104.0)  # again: 2 s
    assert b.due("stable", pid=12, now=106.0)


def test_a_process_that_stayed_up_starts_its_backoff_afresh() -> None:
    b = Backoff()
    assert b.due("router", pid=1, now=0.0)
    b.restarted("router", now=0.0)
    assert not b.due("router", pid=2, now=1.0)
    assert b.due("router", pid=2, now=2.0)
    b.restarted("router", now=2.0)
    assert b.due("router", pid=3, now=2.0 + STABLE_AFTER_S + 1)  # it ran long enough: at once again


def test_roles_back_off_independently() -> None:
    b = Backoff()
    assert b.due("router", pid=1, now=0.0)
    b.restarted("router", now=0.0)
    assert not b.due("router", pid=2, now=0.5)
    assert b.due("stable", pid=3, now=0.5)
