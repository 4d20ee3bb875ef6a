"""Product metrics on the web's `/metrics`: activation, first-tip reaction, D1/D7 retention.

The same definitions as `oo metrics` (oo/metrics_report.py), which reads the
event log; here they are read from what PostgreSQL keeps of it, so every web
process can answer a scrape without reading the topics:

- **activation**: among people who signed up at least 7 days ago, those with a
  tip done, acknowledged or saved within 7 days of signing up;
- **first tip**: among people whose first tip is settled (answered, or left to
  expire, or replaced), those who answered it at all, and positively;
- **D1 / D7 retention**: among people who signed up at least 2 (8) days ago,
  those who used oO on day 1 (7) after signing up (`active_days`, written by
  web/session.py when a session is used).

Each is a pair of gauges (people counted, people who did it) plus the rate;
all web processes report the same figures (take `max`, not `sum`). Computed
at most once per `EVERY` seconds per process: a scrape never costs more than
one set of queries a minute.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

import asyncpg
from aiohttp import web

from adapters.db import UNAVAILABLE
from oo.exposure import metrics_refusal
from web.errors import ApiError
from web.keys import DB, SETTINGS
from web.observe import METRICS

log = logging.getLogger(__name__)
EVERY = 60.0
ACTIVATION_DAYS = 7
POSITIVE = ("done", "ack", "saved")
ANSWERED = ("done", "ack", "saved", "snoozed", "dismissed")
OPEN = ("pending", "delivered", "seen")

_QUERY = """
WITH firsts AS (
    SELECT DISTINCT ON (user_id) user_id, status
    FROM tip_instances ORDER BY user_id, decided_at, decision_id
)
SELECT
  (SELECT count(*) FROM users) AS people,
  (SELECT count(*) FROM users WHERE created_at <= now() - make_interval(days => $1))
      AS activation_people,
  (SELECT count(*) FROM users u WHERE u.created_at <= now() - make_interval(days => $1)
      AND EXISTS (SELECT 1 FROM tip_instances t WHERE t.user_id = u.id
                  AND t.status = ANY($2::text[])
                  AND t.reacted_at <= u.created_at + make_interval(days => $1)))
      AS activated,
  (SELECT count(*) FROM firsts WHERE NOT status = ANY($4::text[])) AS first_tip_people,
  (SELECT count(*) FROM firsts WHERE status = ANY($3::text[])) AS first_tip_answered,
  (SELECT count(*) FROM firsts WHERE status = ANY($2::text[])) AS first_tip_positive,
  (SELECT count(*) FROM users WHERE created_at <= now() - interval '2 days') AS d1_people,
  (SELECT count(*) FROM active_days a JOIN users u ON u.id = a.user_id
      WHERE a.day = 1 AND u.created_at <= now() - interval '2 days') AS d1_back,
  (SELECT count(*) FROM users WHERE created_at <= now() - interval '8 days') AS d7_people,
  (SELECT count(*) FROM active_days a JOIN users u ON u.id = a.user_id
      WHERE a.day = 7 AND u.created_at <= now() - interval '8 days') AS d7_back
"""


async def compute(pool: asyncpg.Pool) -> dict[str, int]:
    """The counts behind every product metric, now."""
    row = await pool.fetchrow(_QUERY, ACTIVATION_DAYS, list(POSITIVE), list(ANSWERED), list(OPEN))
    assert row is not None
    return {key: int(value) for key, value in row.items()}


def _rate(part: int, whole: int) -> str:
    return f"{part / whole:.6f}" if whole else "NaN"


def render(counts: Mapping[str, int]) -> str:
    """The counts as Prometheus gauges (people counted, people who did it, the rate)."""
    c = counts
    metrics = [
        ("oo_product_people", "people with an account", c["people"]),
        ("oo_activation_people", "people signed up at least 7 days ago", c["activation_people"]),
        ("oo_activated_people", "of them, with a positive answer within 7 days", c["activated"]),
        ("oo_first_tip_people", "people whose first tip is settled", c["first_tip_people"]),
        ("oo_first_tip_answered_people", "of them, who answered it", c["first_tip_answered"]),
        ("oo_first_tip_positive_people", "of them, who answered it positively",
         c["first_tip_positive"]),
    ]
    lines = []
    for name, help_text, value in metrics:
        lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value}"]
    lines += ["# HELP oo_retention_people people signed up long enough to count for day N",
              "# TYPE oo_retention_people gauge",
              f'oo_retention_people{{day="1"}} {c["d1_people"]}',
              f'oo_retention_people{{day="7"}} {c["d7_people"]}',
              "# HELP oo_retained_people of them, who used oO on day N after signing up",
              "# TYPE oo_retained_people gauge",
              f'oo_retained_people{{day="1"}} {c["d1_back"]}',
              f'oo_retained_people{{day="7"}} {c["d7_back"]}',
              "# HELP oo_product_rate activation, first-tip and retention rates",
              "# TYPE oo_product_rate gauge",
              f'oo_product_rate{{metric="activation"}} '
              f'{_rate(c["activated"], c["activation_people"])}',
              f'oo_product_rate{{metric="first_tip_answered"}} '
              f'{_rate(c["first_tip_answered"], c["first_tip_people"])}',
              f'oo_product_rate{{metric="first_tip_positive"}} '
              f'{_rate(c["first_tip_positive"], c["first_tip_people"])}',
              f'oo_product_rate{{metric="d1_retention"}} {_rate(c["d1_back"], c["d1_people"])}',
              f'oo_product_rate{{metric="d7_retention"}} {_rate(c["d7_back"], c["d7_people"])}']
    return "\n".join(lines) + "\n"


class ProductMetrics:
    """The rendered gauges, recomputed at most once per `every` seconds."""

    def __init__(self, every: float = EVERY) -> None:
        self.every = every
        self._text = ""
        self._at = float("-inf")

    async def text(self, pool: asyncpg.Pool) -> str:
        if time.monotonic() - self._at >= self.every:
            self._text = render(await compute(pool))
            self._at = time.monotonic()
        return self._text


PRODUCT = web.AppKey("product_metrics", ProductMetrics)


async def metrics(request: web.Request) -> web.Response:
    """`/metrics`: the request metrics, then the product metrics (omitted while PostgreSQL is down).

    Only for the metrics token, or loopback in dev and test (oo/exposure.py):
    account counts, activation and retention are nobody else's business.
    """
    refused = metrics_refusal(request.app[SETTINGS], request.headers.get("Authorization"),
                              request.remote)
    if refused is not None:
        status, message = refused
        raise ApiError(message, status=status,
                       headers={"WWW-Authenticate": "Bearer"} if status == 401 else None)
    text = request.app[METRICS].prometheus()
    try:
        product, up = await request.app[PRODUCT].text(request.app[DB]), 1
    except UNAVAILABLE as err:
        log.warning("product metrics unavailable: PostgreSQL unreachable (%s)", type(err).__name__)
        product, up = "", 0
    text += ("# HELP oo_product_metrics_up 1 when the product metrics below could be read\n"
             f"# TYPE oo_product_metrics_up gauge\noo_product_metrics_up {up}\n{product}")
    return web.Response(text=text, content_type="text/plain")
