"""Dynamic batching: requests wait in one bounded queue and run together, one forward per batch.

A batch is collected when an inference thread is free: the first waiting request, then those
that arrive within `max_wait_ms`, up to `max_batch` inputs (a request never split across
batches; one larger than `max_batch` runs alone, in forwards of `max_batch`). While every
thread is busy, requests pile up and the next batch takes them at once, so under load the
batches fill without waiting. The queue counts inputs, not requests, and refuses what would
exceed `max_queue` (the server answers 503): a backlog never grows past what the threads can
clear in a few batches.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field


class QueueFull(Exception):
    """More inputs waiting than the queue holds."""


@dataclass
class _Request:
    inputs: list
    pairs: list | None
    future: asyncio.Future = field(repr=False)


class Batcher:
    """`await batcher.submit(inputs, pairs)` -> one result per input, from a shared forward."""

    def __init__(self, predict: Callable[[list, list | None], list], max_batch: int, max_wait_ms: float,
                 max_queue: int, threads: int, on_batch: Callable[[int], None] | None = None):
        self.predict, self.max_batch, self.max_wait = predict, max_batch, max_wait_ms / 1000.0
        self.max_queue, self.threads, self.on_batch = max_queue, threads, on_batch
        self.queued = 0  # inputs waiting, not yet in a batch
        self._waiting: deque[_Request] = deque()
        self._arrived: asyncio.Event | None = None
        self._loop_task: asyncio.Task | None = None
        self._running: set[asyncio.Task] = set()
        self._executor: ThreadPoolExecutor | None = None

    async def start(self) -> None:
        self._arrived = asyncio.Event()
        self._slots = asyncio.Semaphore(self.threads)
        self._executor = ThreadPoolExecutor(self.threads, thread_name_prefix="pretune-infer")
        self._loop_task = asyncio.create_task(self._collect())

    async def stop(self) -> None:
        """Finish the batches in flight and what is still queued, then stop the threads."""
        while self._waiting or self._running:
            await asyncio.sleep(0.01)
        if self._loop_task is not None:
            self._loop_task.cancel()
            await asyncio.gather(self._loop_task, return_exceptions=True)
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def submit(self, inputs: list, pairs: list | None = None) -> list:
        if self.queued + len(inputs) > self.max_queue:
            raise QueueFull(f"{self.queued} inputs queued; at most {self.max_queue}")
        request = _Request(inputs, pairs, asyncio.get_running_loop().create_future())
        self._waiting.append(request)
        self.queued += len(inputs)
        self._arrived.set()
        return await request.future

    async def _next(self, timeout: float | None) -> _Request | None:
        """The oldest waiting request, waiting up to `timeout` seconds (None: for ever)."""
        while not self._waiting:
            self._arrived.clear()
            try:
                await asyncio.wait_for(self._arrived.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return self._waiting[0]

    async def _collect(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._slots.acquire()  # a free thread first: meanwhile requests pile up
            first = await self._next(None)
            batch, size = [self._waiting.popleft()], len(first.inputs)
            deadline = loop.time() + self.max_wait
            while size < self.max_batch:
                request = await self._next(max(0.0, deadline - loop.time()) if self.max_wait else 0.0)
                if request is None or size + len(request.inputs) > self.max_batch:
                    break
                batch.append(self._waiting.popleft())
                size += len(request.inputs)
            self.queued -= size
            task = asyncio.create_task(self._run(batch, size))
            self._running.add(task)
            task.add_done_callback(self._running.discard)

    async def _run(self, batch: list[_Request], size: int) -> None:
        try:
            inputs = [x for r in batch for x in r.inputs]
            pairs = [x for r in batch for x in r.pairs] if batch[0].pairs is not None else None
            if self.on_batch is not None:
                self.on_batch(size)
            try:
                results = await asyncio.get_running_loop().run_in_executor(self._executor, self.predict, inputs,
                                                                           pairs)
            except Exception as e:  # a bug, not bad input (that is refused before queueing): every waiter hears it
                for r in batch:
                    if not r.future.done():
                        r.future.set_exception(e)
                return
            start = 0
            for r in batch:
                if not r.future.done():  # a client that went away cancelled its future
                    r.future.set_result(results[start:start + len(r.inputs)])
                start += len(r.inputs)
        finally:
            self._slots.release()
