"""Security headers on every response, set as it is prepared.

An `on_response_prepare` hook rather than a middleware: it also reaches the
responses a handler prepares itself (the event stream) and static files, and it
runs before aiohttp adds its own `Server: Python/… aiohttp/…`.

- The fixed headers below (CSP, nosniff, no referrer to other sites, no framing, …).
- `Server: oO`: no versions to look known bugs up by.
- `Cache-Control: no-store` unless the handler chose otherwise, on every
  response but static files: JSON answers (the tip, preferences, the export,
  errors) are personal, and a shared proxy or the browser's disk cache must not
  keep them.
- `Strict-Transport-Security` when the request came over https, or when the
  app is published at an https `OO_PUBLIC_URL` (TLS ends at a proxy in front;
  the app has no notion of a trusted `X-Forwarded-Proto`). Browsers ignore it
  over plain http, so sending it there is harmless.
"""

from __future__ import annotations

from aiohttp import web

from oo.exposure import SERVER
from web.keys import SETTINGS

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; manifest-src 'self'; worker-src 'self'; object-src 'none'; "
    "base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    # same-origin, not no-referrer: other sites still learn nothing, but under no-referrer
    # browsers send `Origin: null` with our own form posts (sign-out, connectors), and
    # the CSRF check refuses a null Origin (a sandboxed frame of any site sends one).
    "Referrer-Policy": "same-origin",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Permissions-Policy": "camera=(), microphone=(), geolocation=()",
}
HSTS = "max-age=31536000"  # a year; no includeSubDomains: other hosts of the domain are not ours


def served_over_https(request: web.Request) -> bool:
    """The browser reached us over https: directly, or through the https public URL."""
    return request.secure or request.app[SETTINGS].public_url.startswith("https://")


async def security_headers(request: web.Request, response: web.StreamResponse) -> None:
    """`on_response_prepare` hook: add the headers above to `response`."""
    for name, value in HEADERS.items():
        response.headers.setdefault(name, value)
    response.headers["Server"] = SERVER
    if not isinstance(response, web.FileResponse):
        response.headers.setdefault("Cache-Control", "no-store")
    if served_over_https(request):
        response.headers.setdefault("Strict-Transport-Security", HSTS)
