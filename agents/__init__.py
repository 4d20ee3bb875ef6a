"""Faust app and agents: wiring only; decisions live in `domain`."""
