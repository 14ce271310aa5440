"""Run blocking model work in a thread and stream its results to a grpc.aio call.

The model runs one batch at a time (a lock per worker): a second call waits its turn.
If the call is cancelled (client cancel, deadline, server shutdown) the `cancel` event is
set; the work checks it between sub-batches and diffusion steps and stops early.
"""

from __future__ import annotations

import asyncio
import logging
import queue as _queue
import threading
import time
from typing import AsyncIterator, Callable, TypeVar

T = TypeVar("T")

_DONE = object()

Work = Callable[[Callable[[T], None], threading.Event], None]


class ModelRunner:
    """Runs each call's work on one long-lived thread of the worker, a call at a time.

    One thread for every call, not a new one per call: a fresh thread pays again for what
    the allocator and torch keep per thread, measured at 15 to 25% more CPU per call for a
    small LLaVA's greedy decoding (bench/decode.mjs), while the same thread's later calls
    cost what they cost on the in-process main thread.
    """

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self._jobs: _queue.SimpleQueue | None = None

    def _submit(self, job: Callable[[], None]) -> None:
        if self._jobs is None:
            # Started by the first call, from the event loop's thread: it computes at the
            # normal priority (not the load thread's --nice) with the worker's torch threads.
            self._jobs = _queue.SimpleQueue()
            threading.Thread(target=_serve_jobs, args=(self._jobs,), name="model-batch", daemon=True).start()
        self._jobs.put(job)

    async def stream(self, work: Work) -> AsyncIterator[T]:
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        cancel = threading.Event()

        def emit(item: T) -> None:
            if cancel.is_set():
                raise Cancelled()
            loop.call_soon_threadsafe(queue.put_nowait, item)

        def run() -> None:
            t0, c0 = time.perf_counter(), time.thread_time()
            try:
                work(emit, cancel)
            except Cancelled:
                pass
            except BaseException as e:  # noqa: BLE001 - re-raised on the event loop
                loop.call_soon_threadsafe(queue.put_nowait, _Failure(e))
                return
            finally:
                # What the call's work cost on this thread alone (the process's CPU includes gRPC's).
                log.info("call computed in %.3fs (%.3fs of CPU on the model thread)", time.perf_counter() - t0, time.thread_time() - c0)
            loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        # The lock is the model's: held from the job's submission until its work has ended, not
        # until its results are sent, so the next call (the orchestrator keeps two in flight)
        # computes while this one's last results and its end go out.
        await self._lock.acquire()
        finished = loop.create_future()
        finished.add_done_callback(lambda _: self._lock.release())

        def job() -> None:
            try:
                run()
            finally:
                try:
                    loop.call_soon_threadsafe(lambda: finished.done() or finished.set_result(None))
                except RuntimeError:  # the loop has closed: nobody waits any more
                    pass

        try:
            self._submit(job)
        except BaseException:
            self._lock.release()  # no work started: nothing will end it
            raise
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, _Failure):
                    raise item.error
                yield item
        finally:
            cancel.set()
            # Wait until the batch has really stopped (the model is not safe to share between
            # two batches, and the lock goes with the work's end). A shutdown cancels this wait
            # too (asyncio.run cancels what is left): it still waits, so that a cancelled batch
            # ends cleanly (a trainer saves its checkpoint) before the process exits.
            while not finished.done():
                try:
                    await asyncio.shield(finished)
                except asyncio.CancelledError:
                    pass


def _serve_jobs(jobs: "_queue.SimpleQueue") -> None:
    while True:
        job = jobs.get()
        try:
            job()
        except BaseException:  # noqa: BLE001 - a call whose loop has gone; the thread serves the next
            log.exception("a model call's work failed outside its call")


class Cancelled(Exception):
    """Raised inside the work when its call was cancelled."""


class _Failure:
    def __init__(self, error: BaseException) -> None:
        self.error = error


log = logging.getLogger("pds_dpo_workers.streaming")


async def serve_stream(context, responses: AsyncIterator[T]) -> AsyncIterator[T]:
    """Relays a result stream; a failure becomes one clear gRPC status, not "Unexpected <class>"."""
    from pds_dpo_workers.errors import WorkerError

    try:
        async for r in responses:
            yield r
    except WorkerError as e:
        await context.abort(e.status, str(e))
    except Exception as e:  # noqa: BLE001 - logged with its stack, sent as INTERNAL
        log.exception("call failed")
        await context.abort(_internal(), f"{type(e).__name__}: {e}")


def _internal():
    import grpc

    return grpc.StatusCode.INTERNAL
