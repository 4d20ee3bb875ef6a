"""`oo worker` (or `bench.floor`) with Faust settings overridden: `OO_BENCH_FAUST` is a JSON object of
`faust.App` keyword arguments that win over those of `agents/app.py`.

Lets `python -m bench --faust KEY=VALUE` compare knobs side by side without
editing the app; without overrides the benchmark runs `python -m oo worker` itself.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any

import faust


def _patch(overrides: dict[str, Any]) -> None:
    original = faust.App

    class App(original):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            kwargs.update(overrides)
            super().__init__(*args, **kwargs)

    faust.App = App  # type: ignore[misc]


def main(argv: list[str]) -> int:
    overrides = json.loads(os.environ.get("OO_BENCH_FAUST") or "{}")
    if overrides:
        _patch(overrides)
    if argv[:1] == ["bench.floor"]:
        from bench.floor import main as floor_main

        return floor_main()
    from oo.cli import main as oo_main

    return oo_main(["worker", *argv[1:]])


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
