"""ModelRunner: every call's work on one long-lived thread, one call at a time."""

from __future__ import annotations

import asyncio
import threading
import time

import pytest

from pds_dpo_workers.streaming import ModelRunner


def test_calls_share_one_thread_and_a_failure_does_not_end_it():
    runner = ModelRunner()
    threads: list[int] = []

    def work(emit, cancel):
        threads.append(threading.get_ident())
        for i in range(3):
            emit(i)

    def failing(emit, cancel):
        threads.append(threading.get_ident())
        raise ValueError("boom")

    async def main():
        first = [x async for x in runner.stream(work)]
        with pytest.raises(ValueError, match="boom"):
            [x async for x in runner.stream(failing)]
        second = [x async for x in runner.stream(work)]
        return first, second

    assert asyncio.run(main()) == ([0, 1, 2], [0, 1, 2])
    assert len(threads) == 3 and len(set(threads)) == 1 and threads[0] != threading.get_ident()


def test_the_next_call_computes_while_the_results_of_the_one_before_are_still_being_sent():
    # The model is free once a call's work has ended: the orchestrator keeps two calls in flight,
    # and the second computes while the first's last results and its end still go out.
    runner = ModelRunner()
    second_ran = threading.Event()

    def first(emit, cancel):
        for i in range(3):
            emit(i)

    def second(emit, cancel):
        second_ran.set()
        emit("second")

    async def main():
        a = runner.stream(first)
        assert await a.__anext__() == 0  # the rest of the first call's results wait unsent
        b = asyncio.ensure_future(runner.stream(second).__anext__())
        ran = await asyncio.to_thread(second_ran.wait, 5)
        rest = [x async for x in a]
        return ran, await b, rest

    assert asyncio.run(main()) == (True, "second", [1, 2])


def test_a_call_abandoned_midway_stops_its_work_before_the_next_runs():
    runner = ModelRunner()
    events: list[str] = []
    release = threading.Event()

    def endless(emit, cancel):
        events.append("start")
        emit("first")
        release.wait(5)
        for _ in range(5000):
            emit("more")  # raises Cancelled once the call is gone
            time.sleep(0.001)
        events.append("never")

    def quick(emit, cancel):
        events.append("next")
        emit("done")

    async def main():
        stream = runner.stream(endless)
        assert await stream.__anext__() == "first"
        release.set()
        await stream.aclose()  # the caller went away: cancel is set, the lock kept until the work stops
        return [x async for x in runner.stream(quick)]

    assert asyncio.run(main()) == ["done"]
    assert events == ["start", "next"]


def test_a_shutdown_still_lets_the_cancelled_work_finish():
    # As SIGTERM goes: gRPC cancels the call, then asyncio.run cancels what is left; the work
    # (a trainer saving its checkpoint) must still end before the loop does.
    runner = ModelRunner()
    finished: list[str] = []

    def work(emit, cancel):
        emit("first")
        cancel.wait(5)
        time.sleep(0.3)  # saving
        finished.append("saved")

    async def consume():
        async for _ in runner.stream(work):
            pass

    async def main():
        task = asyncio.create_task(consume())
        await asyncio.sleep(0.2)
        task.cancel()
        await asyncio.sleep(0.05)
        # Returning leaves the task waiting for the work: asyncio.run cancels it again.

    asyncio.run(main())
    assert finished == ["saved"]
