"""The one page: black, one tip, rendered on the server so the first paint needs no script.

Pure: a tip (as `adapters.people.tip_view` shows it) and the page's secrets in,
HTML out. Every value from a tip or a setting is escaped; the deep link is kept
only when it is an http(s) URL. The script (/static/oo.js) reads the tip back
from the `data-*` attributes of `#tip` and from the two `<meta>`s, so the
page works under the strict CSP of web/security.py (no inline script or style).
"""

from __future__ import annotations

from collections.abc import Mapping
from html import escape
from typing import Any
from urllib.parse import urlsplit

KIND_LABELS = {"todo": "to do", "advice": "advice"}
HINTS = {
    "todo": "Tap when done \u00b7 hold for more",
    "advice": "Tap to acknowledge \u00b7 hold for more",
}
EMPTY = "Nothing for now."
NO_REASON = "No reason was recorded for this tip."  # the same text in oo.js


def _attr(value: object) -> str:
    return escape(str(value), quote=True)


def safe_link(url: str | None) -> str | None:
    """`url` when it is an absolute http(s) URL with a host, else None (no javascript:, data:...)."""
    if not url:
        return None
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme.lower() not in ("http", "https") or not parts.netloc:
        return None
    return url.strip()


def _tip(tip: Mapping[str, Any] | None) -> str:
    if tip is None:
        return ('<div id="tip" class="tip" tabindex="0" role="button" aria-haspopup="dialog" '
                'aria-keyshortcuts="Enter M" aria-labelledby="tip-kind tip-title" '
                'aria-describedby="tip-body tip-hint" hidden>'
                '<span id="tip-kind" class="kind"></span>'
                '<h1 id="tip-title" class="title" dir="auto"></h1>'
                '<p id="tip-body" class="body" dir="auto" hidden></p>'
                '<p id="tip-hint" class="hint"></p>'
                '</div>')
    kind = str(tip.get("kind") or "")
    body = str(tip.get("body") or "")
    expires = tip.get("expires_at")
    data = {
        "decision-id": tip["decision_id"], "tip-id": tip.get("tip_id") or "", "kind": kind,
        "decided-at": tip.get("decided_at") or "", "expires-at": expires or "",
    }
    attrs = " ".join(f'data-{name}="{_attr(value)}"' for name, value in data.items())
    kind_class = f" kind-{kind}" if kind in KIND_LABELS else ""
    label = KIND_LABELS.get(kind, kind)
    hint = HINTS.get(kind, HINTS["advice"])
    return (f'<div id="tip" class="tip" tabindex="0" role="button" aria-haspopup="dialog" '
            f'aria-keyshortcuts="Enter M" aria-labelledby="tip-kind tip-title" '
            f'aria-describedby="tip-body tip-hint" {attrs}>'
            f'<span id="tip-kind" class="kind{kind_class}">{escape(label)}</span>'
            f'<h1 id="tip-title" class="title" dir="auto">{escape(str(tip.get("title") or ""))}</h1>'
            f'<p id="tip-body" class="body" dir="auto"{"" if body else " hidden"}>{escape(body)}</p>'
            f'<p id="tip-hint" class="hint">{escape(hint)}</p>'
            f'</div>')


def _link(tip: Mapping[str, Any] | None) -> str:
    url = safe_link(tip.get("deep_link")) if tip is not None else None
    hidden = "" if url else " hidden"
    href = f' href="{_attr(url)}"' if url else ""
    return f'<a id="open" class="open"{href} target="_blank" rel="noopener noreferrer"{hidden}>Open \u2197</a>'


def _why(tip: Mapping[str, Any] | None) -> str:
    reason = str(tip.get("reason") or NO_REASON) if tip is not None else ""
    return (f'<p id="why" class="why" dir="auto" aria-live="polite" hidden>{escape(reason)}</p>')


def render_page(tip: Mapping[str, Any] | None, *, csrf_token: str,
                vapid_public_key: str | None) -> str:
    """The page's HTML with `tip` in it (or the calm empty state when None).

    `tip` has decision_id, tip_id, kind ("todo"/"advice"), title, body,
    deep_link, decided_at, expires_at and reason (shown in the menu on request). The CSRF token goes into
    `<meta name="csrf-token">`, the VAPID public key (when given) into
    `<meta name="vapid-public-key">`.
    """
    vapid = (f'<meta name="vapid-public-key" content="{_attr(vapid_public_key)}">\n'
             if vapid_public_key else "")
    empty_hidden = " hidden" if tip is not None else ""
    return f"""<!doctype html>
<html lang="en" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="#000">
<meta name="color-scheme" content="dark">
<meta name="referrer" content="same-origin">
<meta name="csrf-token" content="{_attr(csrf_token)}">
{vapid}<title>oO</title>
<link rel="manifest" href="/manifest.webmanifest">
<link rel="icon" type="image/png" sizes="192x192" href="/static/icons/icon-192.png">
<link rel="apple-touch-icon" href="/static/icons/apple-touch-icon.png">
<meta name="mobile-web-app-capable" content="yes">
<meta name="apple-mobile-web-app-status-bar-style" content="black">
<meta name="apple-mobile-web-app-title" content="oO">
<link rel="stylesheet" href="/static/oo.css">
<script src="/static/oo.js" defer></script>
</head>
<body>
<main id="stage" tabindex="-1">
{_tip(tip)}
<p id="empty" class="empty"{empty_hidden}>{EMPTY}</p>
{_link(tip)}
</main>
<p id="announce" class="sr" aria-live="polite" aria-atomic="true"></p>
<p id="say" class="say" role="status" aria-live="polite" aria-atomic="true"></p>
<button id="notify" class="notify" type="button" hidden>Notify me</button>
<dialog id="menu" class="menu" aria-labelledby="menu-title">
<h2 id="menu-title" class="sr">More for this tip</h2>
<button type="button" data-reaction="save">Save for later</button>
<p id="snooze-label" class="label">Snooze</p>
<div class="row" role="group" aria-labelledby="snooze-label">
<button type="button" data-reaction="snooze" data-when="hour">1 hour</button>
<button type="button" data-reaction="snooze" data-when="tonight">Tonight</button>
<button type="button" data-reaction="snooze" data-when="tomorrow">Tomorrow</button>
</div>
<button type="button" data-reaction="dismiss">Dismiss</button>
<button id="why-button" type="button" data-action="why" aria-expanded="false" aria-controls="why">Why now?</button>
{_why(tip)}
<button type="button" data-reaction="" class="quiet">Cancel</button>
</dialog>
</body>
</html>
"""
