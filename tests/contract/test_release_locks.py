"""The release-lock contract: every backend (fake, lease file, and the Kubernetes Lease in
tests/integration/k8s/test_contract.py) takes, renews, gives back and breaks a stale lease alike."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from abc import ABC, abstractmethod
from pathlib import Path

import pytest

from slipway.locks.base import Holder, LockHeld, ReleaseLock, held
from slipway.locks.fake import FakeReleaseLock
from slipway.locks.file import FileReleaseLock


def dead_pid() -> int:
    """The pid of a process that has exited (and been reaped)."""
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


class ReleaseLockContract(ABC):
    """The behaviour every release lock shares; subclasses provide `lock` (a fresh, free lease)."""

    @abstractmethod
    @pytest.fixture
    def lock(self) -> ReleaseLock:
        """A free lease of one environment."""

    def test_one_holder_at_a_time_and_a_release_frees_it(self, lock: ReleaseLock) -> None:
        first, second = Holder(what="release A"), Holder(what="release B")
        assert lock.holder() is None
        assert lock.try_acquire(first) is None
        assert lock.try_acquire(first) is None  # one's own lease: renewed, not refused
        other = lock.try_acquire(second)
        assert other is not None and (other.id, other.what) == (first.id, "release A")
        assert lock.holder() is not None and lock.holder().id == first.id  # type: ignore[union-attr]
        assert not lock.renew(second)
        lock.release(second)  # not the holder: no-op
        assert lock.holder().id == first.id  # type: ignore[union-attr]
        lock.release(first)
        lock.release(first)  # idempotent
        assert lock.holder() is None and lock.try_acquire(second) is None
        assert lock.holder().id == second.id  # type: ignore[union-attr]

    def test_a_holder_silent_past_its_ttl_is_broken(self, lock: ReleaseLock) -> None:
        silent, next_one = Holder(what="killed release", ttl_s=1.0), Holder(what="next release")
        assert lock.try_acquire(silent) is None
        assert lock.try_acquire(next_one) is not None
        time.sleep(1.3)
        assert lock.holder() is None
        assert lock.try_acquire(next_one) is None
        assert not lock.renew(silent)  # the broken holder learns it on its next heartbeat

    def test_a_holder_whose_process_is_dead_is_broken_at_once(self, lock: ReleaseLock) -> None:
        dead = Holder(what="SIGKILLed release", pid=dead_pid(), pid_start="12345")
        assert lock.try_acquire(dead) is None
        assert lock.holder() is None
        assert lock.try_acquire(Holder(what="next release")) is None

    def test_acquire_waits_then_names_the_live_holder(self, lock: ReleaseLock) -> None:
        first = Holder(what="release A")
        assert lock.try_acquire(first) is None
        told: list[Holder] = []
        with pytest.raises(LockHeld) as refused:
            lock.acquire(Holder(what="release B"), wait_s=0.5, poll_s=0.1, on_wait=told.append)
        assert refused.value.holder.id == first.id and [h.id for h in told] == [first.id]

    def test_a_waiting_release_gets_the_lease_when_the_holder_finishes(self, lock: ReleaseLock) -> None:
        first, second = Holder(what="release A"), Holder(what="release B")
        assert lock.try_acquire(first) is None
        threading.Timer(0.5, lock.release, args=(first,)).start()
        lock.acquire(second, wait_s=10, poll_s=0.1)
        assert lock.holder().id == second.id  # type: ignore[union-attr]

    def test_racing_releases_get_one_lease(self, lock: ReleaseLock) -> None:
        for _ in range(5):
            holders = [Holder(what=f"release {i}") for i in range(4)]
            won: list[Holder] = []
            barrier = threading.Barrier(len(holders))

            def race(h: Holder, barrier: threading.Barrier, won: list[Holder]) -> None:
                barrier.wait()
                if lock.try_acquire(h) is None:
                    won.append(h)

            threads = [threading.Thread(target=race, args=(h, barrier, won)) for h in holders]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert len(won) == 1 and lock.holder().id == won[0].id  # type: ignore[union-attr]
            lock.release(won[0])

    def test_held_renews_while_the_release_runs_and_gives_back_on_any_exit(self, lock: ReleaseLock) -> None:
        mine = Holder(what="long release", ttl_s=1.0)
        with pytest.raises(RuntimeError), held(lock, mine, wait_s=0):
            time.sleep(1.8)  # past the ttl: only the heartbeat keeps it
            assert lock.try_acquire(Holder(what="intruder")) is not None
            raise RuntimeError("the release failed")
        assert lock.holder() is None


class TestFakeReleaseLock(ReleaseLockContract):
    @pytest.fixture
    def lock(self) -> ReleaseLock:
        return FakeReleaseLock()


class TestFileReleaseLock(ReleaseLockContract):
    @pytest.fixture
    def lock(self, tmp_path: Path) -> ReleaseLock:
        return FileReleaseLock(tmp_path / "state" / "release.lease")

    def test_two_processes_share_the_lease_through_the_file(self, tmp_path: Path) -> None:
        path = tmp_path / "release.lease"
        code = (
            "import sys, time; from pathlib import Path\n"
            "from slipway.locks.base import Holder; from slipway.locks.file import FileReleaseLock\n"
            "lock = FileReleaseLock(Path(sys.argv[1]))\n"
            "assert lock.try_acquire(Holder(what='other process')) is None\n"
            "print('held', flush=True); time.sleep(30)\n"
        )
        other = subprocess.Popen([sys.executable, "-c", code, str(path)], stdout=subprocess.PIPE, text=True)
        try:
            assert other.stdout is not None and other.stdout.readline().strip() == "held"
            lock = FileReleaseLock(path)
            holder = lock.try_acquire(Holder(what="this process"))
            assert holder is not None and holder.what == "other process" and holder.pid == other.pid
            other.kill()
            other.wait()
            assert lock.try_acquire(Holder(what="this process")) is None  # its process is gone
        finally:
            other.kill()
            other.wait()
