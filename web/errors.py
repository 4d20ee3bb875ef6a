"""The project's HTTP error tree and the one middleware that maps it to JSON."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

log = logging.getLogger(__name__)
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class ApiError(Exception):
    """An expected failure with an HTTP status and a message safe to show."""

    status = 400

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status


class NotFound(ApiError):
    status = 404


class ServiceUnavailable(ApiError):
    status = 503


def json_error(status: int, message: str, headers: dict[str, str] | None = None) -> web.Response:
    return web.json_response({"error": message, "status": status}, status=status, headers=headers)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error leaves as JSON `{"error", "status"}`; internals are logged, never sent."""
    try:
        return await handler(request)
    except ApiError as err:
        return json_error(err.status, err.message)
    except web.HTTPException as err:
        if err.status < 400:
            raise
        headers = {k: v for k, v in err.headers.items() if k in ("Allow", "Retry-After")}
        return json_error(err.status, err.reason or "error", headers)
    except Exception:  # the last line of defence: log it, answer without internals
        log.exception("unhandled error on %s %s", request.method, request.path)
        return json_error(500, "internal error")
