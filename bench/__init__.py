"""Benchmarks against the real local broker: `make bench` (see docs/benchmarks.md)."""
