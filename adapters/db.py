"""What counts as "PostgreSQL is unavailable" (retry later), as opposed to a bug or bad data.

A server that is down, restarting, shutting down (it terminates sessions with
an admin-shutdown error), or a connection broken mid-query (asyncpg may then
report an internal state error on the next use) are all the same thing to a
caller: the database is away for now. Web requests answer 503; agents retry.
"""

from __future__ import annotations

import asyncpg
from asyncpg import exceptions

UNAVAILABLE: tuple[type[BaseException], ...] = (
    OSError,  # refused, reset, unreachable
    TimeoutError,
    asyncpg.PostgresConnectionError,  # includes ConnectionDoesNotExistError
    exceptions.OperatorInterventionError,  # admin shutdown, crash shutdown, cannot connect now
    asyncpg.TooManyConnectionsError,
    asyncpg.InterfaceError,  # the connection is closed
    asyncpg.InternalClientError,  # a connection broken mid-operation
)
