"""Typed keys of what the web app holds (resources open and close in app.cleanup_ctx)."""

from __future__ import annotations

import asyncpg
from aiohttp import web

from adapters.endpoints import EndpointPolicy
from adapters.outbox import OutboxRelay
from oo.settings import Settings
from web.live import LiveHub
from web.ratelimit import RateLimiter

SETTINGS = web.AppKey("settings", Settings)
DB = web.AppKey("db", asyncpg.Pool)
HUB = web.AppKey("hub", LiveHub)
RELAY = web.AppKey("relay", OutboxRelay)
POLICY = web.AppKey("policy", EndpointPolicy)
VAPID_PUBLIC_KEY = web.AppKey("vapid_public_key", str)
INGEST_LIMITER = web.AppKey("ingest_limiter", RateLimiter)  # per ingest token
INGEST_REFUSED_LIMITER = web.AppKey("ingest_refused_limiter", RateLimiter)  # per client address
REACTION_LIMITER = web.AppKey("reaction_limiter", RateLimiter)  # per person
SUBSCRIBE_LIMITER = web.AppKey("subscribe_limiter", RateLimiter)  # per person
SIGNIN_LIMITER = web.AppKey("signin_limiter", RateLimiter)  # per client address
