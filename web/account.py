"""Deleting one's account from a page: the confirmation step before `DELETE /api/me`'s work.

`GET /account/delete` explains what goes and asks the person to type
"delete everything"; its form posts to `/account/delete` with the session's
CSRF token. `delete_everything` is the one way a person is deleted, for the
page and for the API alike: every connector's grant is revoked at its service
while the tokens still exist, then the person's rows go and the deletion event
is queued (adapters/people.py).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from aiohttp import web

from adapters.people import People
from web.account_pages import delete_page
from web.auth import redirect
from web.connectors import SERVICE
from web.keys import DB, SETTINGS
from web.session import caller, clear_cookie, cookie_secure, require

routes = web.RouteTableDef()
CONFIRMATION = "delete everything"


async def delete_everything(app: web.Application, user_id: uuid.UUID) -> bool:
    """Revoke the person's connectors, delete all their rows, queue the deletion event."""
    await app[SERVICE].forget(user_id)
    return await People(app[DB]).delete(user_id, datetime.now(UTC), str(uuid.uuid4()))


def _html(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/html",
                        headers={"Cache-Control": "no-store"})


@routes.get("/account/delete")
async def confirm(request: web.Request) -> web.Response:
    who = await caller(request, request.app[DB])
    if who is None:
        return redirect("/signin")
    return _html(delete_page(csrf_token=who.csrf_token))


@routes.post("/account/delete")
async def delete(request: web.Request) -> web.Response:
    who = await require(request, request.app[DB])  # CSRF: the form's hidden field
    typed = (await request.post()).get("confirm")
    if typed != CONFIRMATION:
        return _html(delete_page(csrf_token=who.csrf_token,
                                 error=f'Type "{CONFIRMATION}" to confirm.'), status=400)
    await delete_everything(request.app, who.user_id)
    response = redirect("/signin?deleted=1")
    clear_cookie(response, secure=cookie_secure(request, request.app[SETTINGS].env))
    return response
