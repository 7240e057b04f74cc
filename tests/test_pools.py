"""pools.Pool: the one helper every stage's worker processes come from."""
from __future__ import annotations

import os
import time
from concurrent.futures.process import BrokenProcessPool

import pytest

from app.core import pools


def square_or_die(x: int) -> int:
    """What a decoder crash looks like to the pool: the worker process ends without a word."""
    if x == 13:
        os._exit(1)
    return x * x


def nap(seconds: float) -> int:
    time.sleep(seconds)
    return os.getpid()


def alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def test_the_synchronous_pool_runs_each_job_as_it_is_submitted():
    pool = pools.Pool(0)
    fut = pool.submit(square_or_die, 4)
    assert fut.done() and fut.result() == 16
    failing = pool.submit(int, "not a number")
    with pytest.raises(ValueError):  # raised from result(), as a worker's exception would be
        failing.result()
    checks = []
    assert list(pool.imap(square_or_die, [1, 2, 3], ahead=0, crashed=None, check=lambda: checks.append(1))) == [1, 4, 9]
    assert len(checks) == 3 and pool.pids() == []


@pytest.mark.integration
def test_a_crash_costs_only_the_item_that_caused_it_and_the_pool_goes_on():
    with pools.Pool(2) as pool:
        out = list(pool.imap(square_or_die, range(20), ahead=8, crashed=lambda x: ("crashed", x)))
        assert out == [("crashed", 13) if x == 13 else x * x for x in range(20)]
        assert pool.submit(square_or_die, 3).result() == 9  # fresh workers after the crash


@pytest.mark.integration
def test_a_broken_pool_is_replaced_a_limited_number_of_times():
    pool = pools.Pool(1, restarts=1)
    try:
        with pytest.raises(BrokenProcessPool):
            pool.submit(square_or_die, 13).result()
        with pytest.raises(BrokenProcessPool):  # replaced once: its worker dies too
            pool.submit(square_or_die, 13).result()
        with pytest.raises(BrokenProcessPool):  # restarts spent: the caller does the work itself
            pool.submit(square_or_die, 2)
    finally:
        pool.shutdown()


@pytest.mark.integration
def test_terminate_stops_a_job_halfway_and_its_workers_are_gone():
    pool = pools.Pool(2, keep_memory=False)
    futures = [pool.submit(nap, 60) for _ in range(2)]  # a worker is started for each job
    deadline = time.monotonic() + 30
    while len(pool.pids()) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = pool.pids()
    assert len(workers) == 2
    started = time.monotonic()
    pool.terminate()
    assert time.monotonic() - started < 10  # not the minute the job would take
    assert not any(alive(pid) for pid in workers)
    assert all(f.done() for f in futures)
