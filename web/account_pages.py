"""The account pages: sign in, a sign-in refusal, the legal texts, connectors.

Pure: values in, HTML out, every value escaped. Styled with /static/oo.css
only (the CSP of web/security.py forbids inline style and script); forms post
back to the same origin with the session's CSRF token in a hidden field.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from html import escape


def _a(value: object) -> str:
    return escape(str(value), quote=True)


def layout(title: str, content: str) -> str:
    """A black page with one column of content, like the tip page."""
    return f"""<!doctype html>
<html lang="en" dir="ltr">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover">
<meta name="theme-color" content="#000">
<meta name="color-scheme" content="dark">
<meta name="referrer" content="same-origin">
<title>{escape(title)} · oO</title>
<link rel="icon" type="image/png" sizes="192x192" href="/static/icons/icon-192.png">
<link rel="stylesheet" href="/static/oo.css">
</head>
<body>
<main id="stage">
{content}
</main>
</body>
</html>
"""


def signin_page(*, configured: bool, provider: str, notice: str | None = None) -> str:
    """Sign in with the configured OpenID provider, or say sign-in is not configured."""
    said = f'<p id="say" class="body" role="status">{escape(notice)}</p>' if notice else ""
    if not configured:
        return layout("Sign in", (
            '<h1 class="title">oO</h1>' + said +
            '<p id="notice" class="body">Sign-in is not configured on this server yet: '
            'set OO_OIDC_CLIENT_ID and OO_OIDC_CLIENT_SECRET (see <code>oo settings</code>).</p>'))
    return layout("Sign in", (
        '<h1 class="title">oO</h1>' + said +
        '<p class="body">One tip, at the right moment.</p>'
        f'<a id="signin" class="open" href="/auth/login">Sign in with {escape(provider)}</a>'
        '<p class="hint">oO never asks for your password. By signing in you accept the '
        '<a class="open" href="/terms">terms</a> and the '
        '<a class="open" href="/privacy">privacy notice</a>.</p>'))


def refusal_page(message: str, *, what: str = "Sign-in") -> str:
    """Why a sign-in (or a connection) did not complete, and a way to start again."""
    heading, again = (("Not signed in", "/signin") if what == "Sign-in"
                      else ("Not connected", "/connectors"))
    return layout(f"{what} refused", (
        f'<h1 class="title">{escape(heading)}</h1>'
        f'<p id="reason" class="body" role="alert">{escape(what)} refused: {escape(message)}</p>'
        f'<a id="again" class="open" href="{_a(again)}">Start again</a>'))


def document_page(title: str, text: str) -> str:
    return layout(title, f'<pre class="body">{escape(text)}</pre>'
                         '<a class="open" href="/signin">Back</a>')


@dataclass(frozen=True, slots=True)
class ConnectorRow:
    """One line of the connectors page."""

    name: str
    title: str
    scopes: tuple[str, ...]
    configured: bool
    connected_at: datetime | None


def connectors_page(rows: Sequence[ConnectorRow], *, csrf_token: str,
                    message: str | None = None) -> str:
    """Every connector with the access it asks for; connect or disconnect (POST forms)."""
    items = []
    for row in rows:
        scopes = ", ".join(row.scopes) or "none"
        if not row.configured:
            action = '<p class="hint">Not configured on this server.</p>'
        elif row.connected_at is not None:
            action = (f'<form method="post" action="/connectors/{_a(row.name)}/disconnect">'
                      f'<input type="hidden" name="csrf_token" value="{_a(csrf_token)}">'
                      f'<button id="disconnect-{_a(row.name)}" type="submit">Disconnect</button>'
                      '</form>')
        else:
            action = (f'<form method="post" action="/connectors/{_a(row.name)}/connect">'
                      f'<input type="hidden" name="csrf_token" value="{_a(csrf_token)}">'
                      f'<button id="connect-{_a(row.name)}" type="submit">Connect</button>'
                      '</form>')
        state = (f"connected since {row.connected_at:%Y-%m-%d}" if row.connected_at
                 else "not connected")
        items.append(
            f'<section class="menu" id="connector-{_a(row.name)}" data-connected='
            f'"{"true" if row.connected_at else "false"}">'
            f'<h2 class="label">{escape(row.title)}</h2>'
            f'<p class="hint">Access asked: {escape(scopes)} · {escape(state)}</p>'
            f'{action}</section>')
    notice = f'<p id="say" class="body" role="status">{escape(message)}</p>' if message else ""
    return layout("Connectors", (
        '<h1 class="title">Connectors</h1>' + notice + "".join(items)
        + '<section class="menu" id="account"><h2 class="label">Account</h2>'
        + '<form method="post" action="/auth/signout">'
        + f'<input type="hidden" name="csrf_token" value="{_a(csrf_token)}">'
        + '<button id="signout" type="submit">Sign out</button></form>'
        + '<a id="export" class="open" href="/me/export" download>Download my data</a> '
        + '<a id="delete-account" class="open" href="/account/delete">Delete my account</a>'
        + '</section>'
        + '<a class="open" href="/">Back to the tip</a>'))


def delete_page(*, csrf_token: str, error: str | None = None) -> str:
    """The confirmation step before everything about the person is deleted."""
    problem = f'<p id="reason" class="body" role="alert">{escape(error)}</p>' if error else ""
    return layout("Delete my account", (
        '<h1 class="title">Delete everything?</h1>'
        '<p class="body">Your account, sessions, devices, tips and answers are deleted, every '
        'connected service is told to revoke oO\'s access, and oO forgets your state. This '
        'cannot be undone.</p>' + problem
        + '<form class="menu" method="post" action="/account/delete">'
        + f'<input type="hidden" name="csrf_token" value="{_a(csrf_token)}">'
        + '<label class="label" for="confirm">Type \u201cdelete everything\u201d</label>'
        + '<input id="confirm" name="confirm" autocomplete="off" required>'
        + '<button id="delete" type="submit">Delete my account</button></form>'
        + '<a class="open" href="/">Keep my account</a>'))
