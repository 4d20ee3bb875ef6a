"""aiohttp application: the PWA and its JSON API."""
