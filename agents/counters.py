"""In-process counters of the worker, rendered in Prometheus' text format."""

from __future__ import annotations

from collections import Counter


class Counters:
    """Monotonic counters labelled by one label (e.g. topic or reason)."""

    def __init__(self) -> None:
        self._values: Counter[tuple[str, str, str]] = Counter()

    def inc(self, name: str, label: str = "", value: str = "", by: int = 1) -> None:
        self._values[(name, label, value)] += by

    def get(self, name: str, label: str = "", value: str = "") -> int:
        return self._values[(name, label, value)]

    def prometheus(self) -> str:
        lines = []
        for name in sorted({n for n, _, _ in self._values}):
            lines.append(f"# TYPE {name} counter")
            for (n, label, value), count in sorted(self._values.items()):
                if n != name:
                    continue
                labels = f'{{{label}="{_escape(value)}"}}' if label else ""
                lines.append(f"{name}{labels} {count}")
        return "\n".join(lines) + "\n"


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
