"""``WriteApi``: the seed's write interface, optionally made durable.

* ``SYNCHRONOUS``: each ``write()`` is one HTTP request; a failure raises
  :class:`~edge_agent.errors.WriteError` carrying the status and the server's message.
* ``ASYNCHRONOUS``: the same request on a worker thread; ``write()`` returns a
  future (``.get()`` as in the seed, or ``.result()``).
* batching (default): points are queued and a background flusher sends batches
  of ``batch_size`` every ``flush_interval`` with jitter and retry. Without
  ``buffer_dir`` the queue is in memory and an exhausted batch is dropped to the
  error callback (the seed's behaviour); with ``WriteOptions(buffer_dir=PATH)``
  the queue is the disk buffer and nothing accepted is lost.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Dict, Iterable, Iterator, List, Optional

from ..buffer.memqueue import MemoryQueue
from ..delivery.flusher import Callbacks, Flusher
from ..delivery.outcome import Outcome
from ..delivery.transport import Transport
from ..destination import Destination
from ..errors import WriteError
from ..options import PointSettings, WriteOptions, WriteType
from .point import DEFAULT_WRITE_PRECISION
from .records import Serializer

__all__ = ["WriteApi"]

log = logging.getLogger("edge_agent.write_api")


def _with_bytes(callback: Any) -> Any:
    """The user's callback, given the batch as ``bytes`` as influxdb-client does."""
    if callback is None:
        return None

    def call(conf: Any, data: Any, *error: Any) -> Any:
        return callback(conf, data.encode("utf-8") if isinstance(data, str) else data, *error)

    call.__name__ = getattr(callback, "__name__", "callback")
    return call


def _is_observable(record: Any) -> bool:
    # No reactivex import: it is optional, and only its Observables have this shape.
    return callable(getattr(record, "subscribe", None)) and any(
        c.__module__.startswith("reactivex") for c in type(record).__mro__)


def _chunks(lines: Iterable[str], size: int) -> Iterator[List[str]]:
    chunk: List[str] = []
    for line in lines:
        chunk.append(line)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


class _AsyncResult:
    """The seed's async handle: ``get()`` blocks for the outcome."""

    def __init__(self, future: Future) -> None:
        self._future = future

    def get(self, timeout: Optional[float] = None) -> Any:
        return self._future.result(timeout)

    result = get

    def done(self) -> bool:
        return self._future.done()


class WriteApi:
    """Writes records to InfluxDB; get one from ``InfluxDBClient.write_api()``.

    ``WriteApi(influxdb_client, write_options, point_settings, success_callback=,
    error_callback=, retry_callback=)`` as in influxdb-client. The callbacks get
    ``(bucket, org, precision)`` and the batch as ``bytes`` (what the reference
    passes), the error ones also the :class:`~edge_agent.errors.InfluxDBError`.
    """

    def __init__(
        self,
        influxdb_client: Any,
        write_options: Optional[WriteOptions] = None,
        point_settings: Optional[PointSettings] = None,
        success_callback: Any = None,
        error_callback: Any = None,
        retry_callback: Any = None,
    ) -> None:
        client = influxdb_client
        self._client = client
        self._influxdb_client = client  # the reference's attribute name
        self._options = write_options or WriteOptions()
        self._write_options = self._options
        # Client-wide tags, then the write API's own; ``${env.NAME}`` read from the environment.
        tags = PointSettings(**(getattr(client, "default_tags", None) or {})).default_tags
        if point_settings is not None:
            tags.update(point_settings.default_tags)
        self._default_tags = tags
        self._point_settings = point_settings or PointSettings()
        self._serializers: Dict[str, Serializer] = {}
        self._transport = Transport(client.settings)
        user_agent = getattr(getattr(client, "api_client", None), "user_agent", None)
        if user_agent:
            self._transport.user_agent = user_agent
        self._callbacks = Callbacks(_with_bytes(success_callback), _with_bytes(error_callback),
                                    _with_bytes(retry_callback))
        self._executor: Optional[ThreadPoolExecutor] = None
        self._closed = False
        self._queue: Any = None
        self._durable: Any = None
        self._flusher: Optional[Flusher] = None
        self._window = 0  # points enqueued since the last full batch was announced
        self._window_lock = threading.Lock()
        if self._options.write_type == WriteType.batching:
            self._start_batching()

    # -- set-up ---------------------------------------------------------------

    def _start_batching(self) -> None:
        opts = self._options
        dead_letters = None
        if opts.buffer_dir:
            from ..buffer.deadletter import DeadLetters
            from ..buffer.disklog import DiskBuffer
            from ..buffer.durable import DurableWriter
            from ..buffer.lock import StateLock

            os.makedirs(opts.buffer_dir, exist_ok=True)
            # One writer per buffer: another process (or write_api) on it is refused.
            lock = StateLock.acquire(opts.buffer_dir, "buffer_dir")
            try:
                self._queue = DiskBuffer(os.path.join(opts.buffer_dir, "buffer"),
                                         max_size=opts.max_size, max_age=opts.max_age,
                                         sync=opts.sync, lock=lock)
            except BaseException:
                lock.release()
                raise
            dead_letters = DeadLetters(os.path.join(opts.buffer_dir, "dead-letters.lp"))
            self._durable = DurableWriter(
                self._queue, commit_interval=opts.commit_interval / 1000.0,
                batch_size=opts.batch_size)
        else:
            self._queue = MemoryQueue()
        self._flusher = Flusher(self._queue, self._transport, opts, dead_letters,
                                durable=bool(opts.buffer_dir), callbacks=self._callbacks)
        self._flusher.start()

    def _serializer(self, precision: Any) -> Serializer:
        key = str(getattr(precision, "value", precision))
        ser = self._serializers.get(key)
        if ser is None:
            ser = self._serializers[key] = Serializer(precision, self._default_tags)
        return ser

    # -- writing --------------------------------------------------------------

    def write(
        self,
        bucket: str,
        org: Optional[str] = None,
        record: Any = None,
        write_precision: Any = DEFAULT_WRITE_PRECISION,
        **kwargs: Any,
    ) -> Any:
        """Write ``record`` (any record kind, or an iterable of them) to ``bucket``.

        A reactivex ``Observable`` is subscribed to: each item is written as it
        arrives (as in influxdb-client; needs ``pip install reactivex``).
        """
        if self._closed:
            raise WriteError("write_api is closed")
        if record is None:
            return None
        if _is_observable(record):
            record.subscribe(on_next=lambda item: self.write(bucket, org, item,
                                                             write_precision, **kwargs))
            return None
        serializer = self._serializer(write_precision)
        dest = Destination(bucket, org if org is not None else (self._client.org or ""),
                           serializer.precision)
        mode = self._options.write_type
        if mode == WriteType.synchronous:
            return self._write_now(dest, serializer.to_bytes(record, **kwargs))
        if mode == WriteType.asynchronous:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(4, thread_name_prefix="edge-agent-async")
            body = serializer.to_bytes(record, **kwargs)
            return _AsyncResult(self._executor.submit(self._write_now, dest, body))
        self._enqueue(dest, serializer.lines(record, **kwargs))
        return None

    def _write_now(self, dest: Destination, body: bytes) -> None:
        if not body:
            return
        result = self._transport.write(dest, body)
        if result.outcome is not Outcome.OK:
            raise result.error()

    def _enqueue(self, dest: Destination, lines: Iterable[str]) -> None:
        size = self._options.batch_size
        for chunk in _chunks(lines, size):
            if self._durable is not None:
                self._durable.add(chunk, dest)
            else:
                data = "\n".join(chunk).encode("utf-8")
                self._queue.append(dest, data, len(chunk), time.time())
                self._queue.counters.add("accepted", len(chunk))
            with self._window_lock:
                self._window += len(chunk)
                full = self._window >= size
                if full:
                    self._window = 0
            if full and self._flusher is not None:
                # A batch_size worth has arrived (over any number of write() calls
                # and destinations): it leaves now, not at the next flush_interval.
                if self._durable is not None:
                    self._durable.flush()
                self._flusher.notify(full=True)

    # -- flush / close --------------------------------------------------------

    def wait_durable(self, timeout: Optional[float] = None) -> bool:
        """Block until everything written so far is committed to the disk buffer."""
        if self._durable is None:
            return False
        if self._durable.flush():
            return True
        return bool(self._durable.wait_durable(self._durable.last_ticket, timeout))

    def flush(self, timeout: Optional[float] = None) -> bool:
        """Send what is pending now; ``True`` when nothing is left queued.

        Stops early (returns ``False``) when InfluxDB fails and a retry would
        have to wait longer than ``timeout`` (default: no waiting).
        """
        if self._flusher is None:
            return True
        if self._durable is not None:
            self._durable.flush()
        return self._flusher.drain(timeout or 0.0)

    def close(self) -> None:
        """Deliver what is pending within ``max_close_wait``; report what could not be."""
        if self._closed:
            return
        self._closed = True
        if self._flusher is not None:
            self._flusher.stop()
            if self._durable is not None:
                self._durable.close()
            # With a disk buffer the data is safe: a server that is down is not waited for.
            done = self._flusher.drain(self._options.max_close_wait / 1000.0,
                                       give_up_on_failure=self._durable is not None)
            if not done:
                left = self._pending_points()
                where = ("kept in the disk buffer for the next run" if self._durable is not None
                         else "lost (no buffer_dir)")
                log.error("write_api closed with %d point(s) undelivered after "
                          "max_close_wait: %s", left, where)
            if hasattr(self._queue, "close"):
                self._queue.close()
        if self._executor is not None:
            self._executor.shutdown(wait=True)
        self._transport.close()

    def _pending_points(self) -> int:
        queue = self._queue
        if queue is None:
            return 0
        if hasattr(queue, "stats"):
            return int(queue.stats().points)
        return int(getattr(queue, "points", 0))

    @property
    def counters(self) -> Dict[str, Any]:
        """Accepted / written / rejected / dropped... for this writer."""
        return dict(self._queue.counters.snapshot()) if self._queue is not None else {}

    def __enter__(self) -> WriteApi:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:  # pragma: no cover - best effort, like the seed
        pass
