"""Adapters: one per outside system (PostgreSQL, Web Push, ...), each given its pool or session."""
