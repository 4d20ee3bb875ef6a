"""Live updates for open pages: PostgreSQL LISTEN/NOTIFY fanned out to server-sent events.

Whoever changes a person's tips (the notifier recording a decision, the web
recording a reaction) calls `adapters.tips.notify_tips_changed` in the same
transaction; the payload is only the id, never the tip. Each web process holds
one listening connection and wakes the streams of that person, which then read
the current tip themselves. If the listening connection drops it is opened
again, and every stream is woken once (a notification may have been missed).
"""

from __future__ import annotations

import asyncio
import logging
import random
import uuid
from collections import defaultdict

import asyncpg

from adapters.db import UNAVAILABLE
from adapters.tips import TIPS_CHANNEL as CHANNEL

log = logging.getLogger(__name__)


class LiveHub:
    """One LISTEN connection per process; a wake-up event per open stream."""

    def __init__(self, database_url: str) -> None:
        self.database_url = database_url
        self._streams: dict[str, set[asyncio.Event]] = defaultdict(set)
        self._task: asyncio.Task[None] | None = None
        self.connected = asyncio.Event()
        self.closing = False  # set on shutdown: open streams end at once

    def start(self) -> None:
        self._task = asyncio.create_task(self._listen(), name="oo-live-listen")

    def close_streams(self) -> None:
        """Shutdown: wake every open stream so it ends now, not at its next keepalive."""
        self.closing = True
        self._wake_all()

    async def stop(self) -> None:
        self.close_streams()
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def subscribe(self, user_id: uuid.UUID) -> asyncio.Event:
        wake = asyncio.Event()
        self._streams[str(user_id)].add(wake)
        return wake

    def unsubscribe(self, user_id: uuid.UUID, wake: asyncio.Event) -> None:
        streams = self._streams.get(str(user_id))
        if streams is not None:
            streams.discard(wake)
            if not streams:
                del self._streams[str(user_id)]

    @property
    def open_streams(self) -> int:
        return sum(len(s) for s in self._streams.values())

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        for wake in self._streams.get(payload, ()):
            wake.set()

    def _wake_all(self) -> None:
        for streams in self._streams.values():
            for wake in streams:
                wake.set()

    async def _listen(self) -> None:
        delay = 0.2
        while True:
            conn = None
            try:
                conn = await asyncpg.connect(self.database_url, timeout=10)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda _c, lost=lost: lost.set())
                await conn.add_listener(CHANNEL, self._notified)
                self.connected.set()
                self._wake_all()  # anything missed while not listening
                delay = 0.2
                while not lost.is_set():
                    try:
                        await asyncio.wait_for(lost.wait(), 15)
                    except TimeoutError:
                        await conn.execute("SELECT 1")  # notice a silently dead connection
            except asyncio.CancelledError:
                raise
            except (*UNAVAILABLE, asyncpg.PostgresError) as err:
                log.warning("live updates: listening failed (%s); retrying in up to %.1fs",
                            type(err).__name__, delay)
            finally:
                self.connected.clear()
                if conn is not None and not conn.is_closed():
                    conn.terminate()
            await asyncio.sleep(random.uniform(delay / 2, delay))
            delay = min(delay * 2, 10.0)
