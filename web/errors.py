"""The project's HTTP error tree and the one middleware that maps it to JSON."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from adapters.db import UNAVAILABLE

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An expected failure with an HTTP status and a message safe to show."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None,
                 headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}
        if status is not None:
            self.status = status


class NotFound(ApiError):
    status = 404


class ServiceUnavailable(ApiError):
    status = 503


class TooManyRequests(ApiError):
    """A rate limit: `retry_after` is the `Retry-After` value in whole seconds."""

    status = 429

    def __init__(self, retry_after: str, what: str = "requests") -> None:
        super().__init__(f"too many {what}; retry in {retry_after} s",
                         headers={"Retry-After": retry_after})


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON `{"error", "status"}`; internals are logged, never sent."""
    try:
        return await handler(request)
    except ApiError as err:
        return json_error(err.status, err.message, err.headers or None)
    except ConnectionResetError:
        raise  # the client hung up: nothing to answer, and not the database's fault
    except UNAVAILABLE as err:
        # PostgreSQL is down or unreachable: a clear, retryable answer, never a 500 or a hang.
        log.warning("database unavailable on %s %s: %s", request.method, request.path,
                    type(err).__name__)
        return json_error(503, "the service is temporarily unavailable; try again shortly",
                          {"Retry-After": "5"})
    except web.HTTPException as err:
        if err.status < 400:
            raise
        headers = {k: v for k, v in err.headers.items() if k in ("Allow", "Retry-After")}
        return json_error(err.status, err.reason or "error", headers)
    except Exception:  # the last line of defence: log it, answer without internals
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error")
