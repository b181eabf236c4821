"""CPU: the build lock across processes: one builds, the others wait and reuse; failures and crashes end every wait."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
from pathlib import Path

import pytest

from aitune_trt_aot import BuildError, cache_lock, holders
from aitune_trt_aot.cache_lock import lock_path, take_turn
from aitune_trt_aot.holders import Holder
from tests.support.processes import light_env, start_python

NAME = "f" * 64
ELSEWHERE = "other-host|another-boot|pid:[1]"  # a process space whose pids cannot be checked from here


def _foreign_holder(heartbeat: float, rank: int = 3) -> Holder:
    """A holder on another machine (rank 3 of 8 on host gpu-node-7)."""
    return Holder("gpu-node-7", 4242, rank, 8, heartbeat, heartbeat, "t" * 32, ELSEWHERE, "1")


def _wait_for(path: Path, process, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_one_process_builds_while_the_others_wait_then_reuse_what_it_published(tmp_path: Path) -> None:
    """Four processes take turns on one entry: exactly one builds it; the three others wait and get its entry."""
    root = tmp_path / "builds"
    processes = [
        start_python("-m", "tests.support.cache_processes", "build", str(root), NAME, "1.5", env=light_env())
        for _ in range(4)
    ]
    deadline = time.monotonic() + 120
    while len(list(tmp_path.glob("ready-*"))) < 4:
        assert all(p.poll() is None for p in processes) and time.monotonic() < deadline, "a process did not start"
        time.sleep(0.05)
    (tmp_path / "go").touch()
    results = []
    for process in processes:
        out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    builders = [r for r in results if r["built"]]
    assert len(builders) == 1
    assert {r["builder"] for r in results} == {str(processes[results.index(builders[0])].pid)}
    assert all(r["waited"] > 0.5 for r in results if not r["built"]), "the others waited for the build"
    assert not lock_path(root, NAME).exists(), "the lock is gone once the build is published"


def test_a_crashed_lock_holder_is_taken_over_at_once_on_its_own_machine(tmp_path: Path) -> None:
    """A holder killed with SIGKILL: its pid is gone here, so the next process takes the lock without waiting."""
    ready = tmp_path / "ready"
    holder = start_python(
        "-m", "tests.support.cache_processes", "hold-lock", str(tmp_path), NAME, str(ready), env=light_env()
    )
    try:
        _wait_for(ready, holder)
    finally:
        holder.kill()
        holder.communicate()
    stale = holders.read_holder(lock_path(tmp_path, NAME))
    assert stale is not None and stale.pid == holder.pid
    turn = take_turn(tmp_path, NAME, lambda: None, wait=30, timeout=600)
    try:
        assert turn.lock is not None and turn.lock.holder.token != stale.token
        assert turn.builder is not None and turn.builder.token == stale.token
        assert turn.waited < 5, "a dead pid is not waited for"
    finally:
        turn.lock.release()


def test_a_lock_from_another_machine_is_taken_over_after_the_timeout(tmp_path: Path) -> None:
    """A holder elsewhere whose heartbeat stopped: its lock is taken over once the heartbeat is timeout seconds old."""
    holders.write_holder(lock_path(tmp_path, NAME), _foreign_holder(heartbeat=time.time()))
    turn = take_turn(tmp_path, NAME, lambda: None, wait=30, timeout=1.0)
    try:
        assert turn.lock is not None
        assert 0.9 < turn.waited < 10
    finally:
        turn.lock.release()


def test_a_live_build_elsewhere_is_waited_for_up_to_the_limit_then_named(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A holder elsewhere that keeps beating is never overrun; the wait ends with a BuildError naming it."""
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "8")
    path = lock_path(tmp_path, NAME)
    stop = threading.Event()

    def beat() -> None:
        while not stop.is_set():
            holders.write_holder(path, _foreign_holder(heartbeat=time.time()))
            stop.wait(0.1)

    holders.write_holder(path, _foreign_holder(heartbeat=time.time()))  # held before this process looks
    beater = threading.Thread(target=beat)
    beater.start()
    try:
        with pytest.raises(BuildError) as raised:
            take_turn(tmp_path, NAME, lambda: None, wait=1.5, timeout=1.0)
    finally:
        stop.set()
        beater.join()
    message = str(raised.value)
    assert message.startswith("rank 1 of 8 on host ")
    assert re.search(r"waited \d+ s for the build of this model by rank 3 of 8 on host gpu-node-7", message)
    assert f"Set {cache_lock.BUILD_WAIT_ENV} above 1.5 s" in message


def test_a_failed_build_fails_every_process_waiting_for_it_naming_the_builder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The builder records its error before letting go; the waiter raises it with the builder's rank and host."""
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    builder = take_turn(tmp_path, NAME, lambda: None)
    assert builder.lock is not None
    outcome: dict[str, BaseException] = {}
    looking = threading.Event()

    def wait() -> None:
        try:
            take_turn(tmp_path, NAME, lambda: looking.set(), wait=30)
        except BaseException as error:  # noqa: BLE001 - handed to the test
            outcome["error"] = error

    waiter = threading.Thread(target=wait)
    waiter.start()
    assert looking.wait(30), "the waiter started looking"
    time.sleep(0.2)
    builder.lock.fail(BuildError("engines do not reproduce eager PyTorch."))
    waiter.join(30)
    error = outcome["error"]
    assert isinstance(error, BuildError)
    assert "waited for the build of this model by rank 0 of 2 on host" in str(error)
    assert "which failed: BuildError: engines do not reproduce eager PyTorch. Every process sharing" in str(error)
    assert not lock_path(tmp_path, NAME).exists()


def test_an_earlier_failure_does_not_fail_a_new_build(tmp_path: Path) -> None:
    """A failure left by an earlier tune is not this build's: the process builds, and the marker goes."""
    first = take_turn(tmp_path, NAME, lambda: None)
    first.lock.fail(RuntimeError("out of memory"))
    assert cache_lock.read_failure(tmp_path, NAME).error == "RuntimeError: out of memory"
    again = take_turn(tmp_path, NAME, lambda: None, wait=5)
    try:
        assert again.lock is not None
        assert cache_lock.read_failure(tmp_path, NAME) is None
    finally:
        again.lock.release()


def test_the_entry_found_after_taking_the_lock_is_reused_not_rebuilt(tmp_path: Path) -> None:
    """Published between the look-up and the lock: the lock is given back and the entry returned."""
    answers = iter([None, "published"])
    turn = take_turn(tmp_path, NAME, lambda: next(answers))
    assert (turn.lock, turn.found) == (None, "published")
    assert not lock_path(tmp_path, NAME).exists()


def test_the_heartbeat_keeps_the_lock_fresh_and_release_spares_a_lock_that_changed_hands(tmp_path: Path) -> None:
    """While held, the lock's heartbeat advances; a lock another process took over meanwhile is left in place."""
    turn = take_turn(tmp_path, NAME, lambda: None, timeout=0.6)
    path = lock_path(tmp_path, NAME)
    first = holders.read_holder(path)
    time.sleep(0.5)
    assert holders.read_holder(path).heartbeat > first.heartbeat
    holders.write_holder(path, _foreign_holder(heartbeat=time.time()))  # taken over meanwhile
    turn.lock.release()
    assert holders.read_holder(path).token == "t" * 32


def test_an_unreadable_lock_is_removed_once_it_is_older_than_the_timeout(tmp_path: Path) -> None:
    path = lock_path(tmp_path, NAME)
    path.write_text("{torn")
    turn = take_turn(tmp_path, NAME, lambda: None, wait=10, timeout=0.5)
    try:
        assert turn.lock is not None and 0.4 < turn.waited < 5
    finally:
        turn.lock.release()


def test_who_holds_a_claim_is_judged_by_pid_here_and_by_heartbeat_elsewhere() -> None:
    me = holders.me()
    assert holders.gone(me, timeout=1, now=me.heartbeat + 3600) is None, "a live process here is never overrun"
    assert "no longer running" in holders.gone(dataclasses.replace(me, pid_start="1"), timeout=600)
    elsewhere = _foreign_holder(heartbeat=100.0)
    assert holders.gone(elsewhere, timeout=60, now=150.0) is None
    assert "last heartbeat was 61 s ago (the limit is 60 s" in holders.gone(elsewhere, timeout=60, now=161.0)
    assert Holder.from_json(json.loads(json.dumps(me.to_json()))) == me
    assert Holder.from_json({"host": "x"}) is None
    assert elsewhere.describe() == "rank 3 of 8 on host gpu-node-7"
    assert dataclasses.replace(me, rank=None, world_size=None).describe() == f"process {me.pid} on host {me.host}"
