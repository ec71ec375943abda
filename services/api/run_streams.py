"""Live run events over Server-Sent Events: one LISTEN per API process, fanned out to bounded subscriber queues.

Each committed run event NOTIFYs its position (a trigger on run_events). The hub reads the notified rows, once
for all subscribers, and offers each to the subscribers that want it. A stream first replays what it asks for
(after its Last-Event-ID) from the log, then sends live events; the SSE id is the event's position. A client
too slow to take what comes has its queue overflow: its stream closes and it resumes with Last-Event-ID, so a
slow client never grows the server's memory. Nothing polls: the database wakes the hub.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import typing
from collections.abc import AsyncIterator, Callable, Iterator
from typing import Any

import asyncpg
import structlog
from aiohttp import web
from aiohttp_sse import EventSourceResponse, sse_response

from services.api.auth import presented_key
from services.api.context import DEPS, principal
from services.api.problems import BadRequest
from services.api.render import json_default
from services.api.timeline_json import event_json
from services.core.store import timeline
from services.core.store.timeline import LoggedEvent
from services.core.timeline import REPLAY_BATCH, Replay
from shared.events import RunEnded
from shared.postgres import listen_forever, with_database

log = structlog.get_logger()

CHANNEL = "run_events"  # the trigger of migration 0007 notifies here
QUEUE_SIZE = 1000  # events a subscriber may lag behind before its stream is closed
HEARTBEAT_S = 15.0  # a comment line this often keeps proxies from closing an idle stream
KEY_RECHECK_S = 15.0  # how long a revoked key (or one whose teams changed) may still receive events
TERMINAL_TYPES = frozenset(end.model_fields["type"].default for end in typing.get_args(RunEnded))  # a run's last


class Subscription:
    """One stream's queue of live events; `None` in it ends the stream (overflow, or the listener reconnected)."""

    def __init__(self, wants: Callable[[LoggedEvent], bool], size: int) -> None:
        self.wants = wants
        self._queue: asyncio.Queue[LoggedEvent | None] = asyncio.Queue(size)
        self.ended = False

    def offer(self, event: LoggedEvent) -> None:
        if self.ended:
            return
        try:
            self._queue.put_nowait(event)
        except asyncio.QueueFull:
            self.end()

    def end(self) -> None:
        """Drop what is queued and end the stream: the client resumes from its Last-Event-ID."""
        self.ended = True
        while not self._queue.empty():
            self._queue.get_nowait()
        self._queue.put_nowait(None)

    async def next(self) -> LoggedEvent | None:
        return await self._queue.get()

    def discard_queued(self) -> bool:
        """Drop the events queued so far (a reader that re-reads the state instead); False if the stream ended."""
        while not self._queue.empty():
            if self._queue.get_nowait() is None:
                return False
        return True


class RunEventHub:
    def __init__(self, pool: asyncpg.Pool, queue_size: int = QUEUE_SIZE) -> None:
        self._pool = pool
        self._queue_size = queue_size
        self._subscribers: set[Subscription] = set()
        self._notified: list[int] = []
        self._wake = asyncio.Event()
        self._listening = False

    async def run(self) -> None:
        """Listen and fan out, until cancelled."""
        async with asyncio.TaskGroup() as group:
            group.create_task(listen_forever(self._pool, CHANNEL, self._on_notify, self._on_connected))
            group.create_task(self._fan_out())

    @contextlib.contextmanager
    def subscribe(self, wants: Callable[[LoggedEvent], bool]) -> Iterator[Subscription]:
        subscription = Subscription(wants, self._queue_size)
        self._subscribers.add(subscription)
        try:
            yield subscription
        finally:
            self._subscribers.discard(subscription)

    def end_all(self) -> None:
        """End every stream (the process stops): each client resumes with Last-Event-ID, here or elsewhere."""
        for subscription in list(self._subscribers):
            subscription.end()

    def _on_notify(self, payload: str) -> None:
        if self._subscribers:
            self._notified.append(int(payload))
            self._wake.set()

    def _on_connected(self) -> None:
        # After a lost connection, what was notified meanwhile is unknown: every stream ends, and its client
        # resumes with Last-Event-ID (replayed from the log).
        if self._listening:
            for subscription in list(self._subscribers):
                subscription.end()
        self._listening = True

    async def _fan_out(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            positions, self._notified = self._notified, []
            events = await with_database(self._pool, lambda conn: timeline.events_at(conn, positions))  # noqa: B023
            for event in events:
                for subscription in list(self._subscribers):
                    if subscription.wants(event):
                        subscription.offer(event)


HUB = web.AppKey("run_event_hub", RunEventHub)


async def event_hub(app: web.Application) -> AsyncIterator[None]:
    """cleanup_ctx (after the one that opens the pool): the hub lives as long as the application."""
    hub = RunEventHub(app[DEPS].runtime.pool)
    app[HUB] = hub
    task = asyncio.create_task(hub.run(), name="run_event_hub")
    task.add_done_callback(_died)
    try:
        yield
    finally:
        task.remove_done_callback(_died)
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


async def end_streams(app: web.Application) -> None:
    """on_shutdown: the streams end before aiohttp waits for the handlers still running."""
    hub = app.get(HUB)
    if hub is not None:
        hub.end_all()


def _died(task: asyncio.Task[None]) -> None:
    # Streams would silently stop: the process goes down instead (and is restarted), as every service does.
    error = None if task.cancelled() else task.exception()
    log.critical("background_task_died", task=task.get_name(), error=repr(error))
    os.kill(os.getpid(), signal.SIGTERM)


def last_event_id(request: web.Request) -> int | None:
    raw = request.headers.get("Last-Event-ID")
    if raw is None or raw == "":
        return None
    if not raw.isascii() or not raw.isdigit() or len(raw) > 18:
        raise BadRequest("Last-Event-ID is not the id of an event of this stream.", field="Last-Event-ID")
    return int(raw)


async def stream(
    request: web.Request, wants: Callable[[LoggedEvent], bool], replay: Replay | None, after: int, *, ends: bool,
    over: bool = False,
) -> EventSourceResponse:  # fmt: skip
    """Subscribe, replay the log after `after` (unless `replay` is None), then send live events. With `ends`,
    the stream closes after a run's terminal event, or after the replay if the run was `over` already (its
    terminal event was before Last-Event-ID)."""
    hub = request.config_dict[HUB]
    pool = request.config_dict[DEPS].runtime.pool
    with hub.subscribe(wants) as subscription:  # before the replay: nothing committed meanwhile is missed
        async with sse_response(request, ping_interval=HEARTBEAT_S, headers={"X-Accel-Buffering": "no"}) as out:
            try:
                await _replay_then_follow(request, out, pool, subscription, replay, after, ends=ends, over=over)
            except ConnectionResetError:  # the client went away mid-write: how streams nobody reads end
                log.info("stream_client_gone", path=request.path)
    return out


async def _replay_then_follow(
    request: web.Request, out: EventSourceResponse, pool: asyncpg.Pool, subscription: Subscription,
    replay: Replay | None, after: int, *, ends: bool, over: bool,
) -> None:  # fmt: skip
    await out.write(b": open\r\n\r\n")  # the headers go now, not with the first event (clients wait on them)
    # A live event may have been replayed already: only one committed after the subscription can be, and its
    # position is above the log's end at that time; remembering just those keeps a replay of the whole log small.
    horizon = await with_database(pool, timeline.last_position)
    replayed: set[int] = set()
    while replay is not None:
        batch = await with_database(pool, lambda conn: replay(conn, after))  # noqa: B023 (awaited here)
        for logged in batch:
            if logged.position > horizon:
                replayed.add(logged.position)
            if await _send(out, logged) and ends:
                return
            after = logged.position
        if len(batch) < REPLAY_BATCH:
            break
    if over:
        return
    gone = asyncio.ensure_future(_gone_or_key_changed(out, request))
    try:
        while (event := await next_or_gone(subscription, gone)) is not None:
            if event.position not in replayed and await _send(out, event) and ends:
                return
    finally:
        gone.cancel()


async def _gone_or_key_changed(out: EventSourceResponse, request: web.Request) -> None:
    """Ends when the client went away (a ping failed), or when the key that opened the stream no longer is what it
    was (revoked, or its teams changed): the stream must not outlive what it was allowed to show."""
    client = asyncio.ensure_future(out.wait())
    try:
        while True:
            done, _ = await asyncio.wait([client], timeout=KEY_RECHECK_S)
            if done or not await _same_principal(request):
                return
    finally:
        if not client.done():
            client.cancel()


async def _same_principal(request: web.Request) -> bool:
    key = presented_key(request)
    try:
        found = None if key is None else await request.config_dict[DEPS].access.authenticate(key)
    except (OSError, asyncpg.PostgresError):  # the database away for a moment: the stream goes on
        return True
    return found == principal(request)


async def _send(out: EventSourceResponse, event: LoggedEvent) -> bool:
    """Send one event; True if it ends its run."""
    await out.send(json.dumps(event_json(event), default=json_default), id=str(event.position))
    return event.type in TERMINAL_TYPES


async def next_or_gone(subscription: Subscription, gone: asyncio.Future[None]) -> LoggedEvent | None:
    """The next live event, or None once the stream must end or the client went away."""
    following = asyncio.ensure_future(subscription.next())
    waiting: list[asyncio.Future[Any]] = [following, gone]
    await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
    if not following.done():
        following.cancel()
        return None
    return following.result()
