"""Reading requests off the event loop: one at a time, or gathered into model batches."""
import asyncio
import logging
import time
from dataclasses import dataclass
from typing import Any

from ..read.ctc import DecodeOptions
from .metrics import Metrics
from .settings import ApiError, ServeSettings

log = logging.getLogger("crnn_captcha.serve")


# ----- the model: batched or one request at a time ----------------------------------------------
@dataclass
class Job:
    images: list[bytes]
    options: DecodeOptions
    future: asyncio.Future


def settle(job: Job, result: Any = None, error: BaseException | None = None) -> None:
    """Answer a job's waiting request, unless it has gone (cancelled) meanwhile."""
    if job.future.done():
        return
    if error is not None:
        job.future.set_exception(error)
    else:
        job.future.set_result(result)


class ReadQueue:
    """Runs the reader for requests; the model always works in a worker thread.

    This base class reads each request on its own (``--no-batching``); :class:`Batcher` gathers them.
    ``arriving`` counts requests whose body is still being received: a batcher waits for more work
    only while some is on its way.
    """

    def __init__(self, reader, metrics: Metrics, settings: ServeSettings):
        self.reader, self.metrics, self.settings = reader, metrics, settings
        self.arriving = 0
        self.waiting = 0
        self.running = False

    async def start(self) -> None:
        self.running = True

    async def stop(self) -> None:
        self.running = False

    @property
    def alive(self) -> bool:
        return self.running

    def busy(self) -> ApiError:
        return ApiError(503, "busy", f"server busy: {self.settings.max_queue} requests already wait for the model; "
                                     "try again shortly")

    async def predict(self, images: list[bytes], options: DecodeOptions) -> list:
        """One model call (``reader.apredict_batch``) with the metrics around it."""
        self.metrics.batch.observe(len(images))
        start = time.perf_counter()
        preds = await self.reader.apredict_batch(images, self.settings.batch_size, "mark", options=options)
        self.metrics.model_seconds.observe(time.perf_counter() - start)
        failed = sum(not p.ok for p in preds)
        self.metrics.images.labels("read").inc(len(preds) - failed)
        self.metrics.images.labels("failed").inc(failed)
        return preds

    async def submit(self, images: list[bytes], options: DecodeOptions) -> list:
        """The predictions for ``images`` (in order); 503 when too many requests already wait."""
        if self.waiting >= self.settings.max_queue:
            raise self.busy()
        self.waiting += 1
        self.metrics.queued.inc()
        try:
            return await self.predict(images, options)
        finally:
            self.waiting -= 1
            self.metrics.queued.dec()


class Batcher(ReadQueue):
    """Gathers concurrent requests into one model call.

    One task takes the first waiting request, then keeps collecting for at most ``batch_wait_ms``
    (and only while other requests are still arriving) or until ``max_batch`` images are in hand;
    requests with different decoding options go to separate calls. While a call runs, new requests
    queue (at most ``max_queue``; beyond that 503) and form the next batch.
    """

    def __init__(self, reader, metrics: Metrics, settings: ServeSettings):
        super().__init__(reader, metrics, settings)
        self.queue: asyncio.Queue | None = None
        self.task: asyncio.Task | None = None

    async def start(self) -> None:
        self.queue = asyncio.Queue(self.settings.max_queue)
        self.task = asyncio.get_running_loop().create_task(self._serve())
        self.running = True

    @property
    def alive(self) -> bool:
        return self.running and self.task is not None and not self.task.done()

    async def stop(self) -> None:
        self.running = False
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        while self.queue is not None and not self.queue.empty():
            settle(self.queue.get_nowait(), error=ApiError(503, "busy", "server shutting down"))

    async def submit(self, images: list[bytes], options: DecodeOptions) -> list:
        job = Job(images, options, asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(job)
        except asyncio.QueueFull:
            raise self.busy() from None
        self.metrics.queued.inc()
        try:
            return await job.future
        finally:
            self.metrics.queued.dec()

    async def _collect(self) -> list[Job]:
        jobs = [await self.queue.get()]
        count = len(jobs[0].images)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.batch_wait_ms / 1000.0
        try:
            while count < self.settings.max_batch:
                if self.queue.empty():
                    remaining = deadline - loop.time()
                    if remaining <= 0 or self.arriving == 0:
                        break  # waiting longer would only add latency
                    try:
                        job = await asyncio.wait_for(self.queue.get(), remaining)
                    except asyncio.TimeoutError:
                        break
                else:
                    job = self.queue.get_nowait()
                jobs.append(job)
                count += len(job.images)
        except asyncio.CancelledError:
            for job in jobs:
                settle(job, error=ApiError(503, "busy", "server shutting down"))
            raise
        return jobs

    async def _serve(self) -> None:
        """The batcher's loop: it never ends but by cancellation, whatever a model call raises."""
        while True:
            jobs = await self._collect()
            groups: dict[DecodeOptions, list[Job]] = {}
            for job in jobs:
                groups.setdefault(job.options, []).append(job)
            try:
                for options, group in groups.items():
                    try:
                        await self._run_group(options, group)
                    except Exception:  # a bug, not a bad request: logged here, a bare 500 for the group
                        log.exception("a model call failed")
                        for job in group:
                            settle(job, error=ApiError(500, "internal", "internal error"))
            except asyncio.CancelledError:
                for job in jobs:
                    settle(job, error=ApiError(503, "busy", "server shutting down"))
                raise

    async def _run_group(self, options: DecodeOptions, group: list[Job]) -> None:
        """One model call for the images of requests with the same options; each gets its share."""
        preds = await self.predict([image for job in group for image in job.images], options)
        start = 0
        for job in group:
            settle(job, preds[start:start + len(job.images)])
            start += len(job.images)


