"""Lighthouse on oO's page: performance, accessibility and best practices, with Debian's Chromium.

The npm `lighthouse` package is pinned in tests/peers/lighthouse (package.json
and package-lock.json) and installed there with `npm ci` on first use (again
only when the lock file changes); it drives /usr/bin/chromium through
CHROME_PATH and never downloads a browser. Lighthouse's defaults are kept:
mobile form factor, simulated throttling (slow 4G, 4× CPU slowdown).

bench/web.py runs it against the running `oo web` with a session cookie
(`--extra-headers`), so the page has a tip, as a signed-in person sees it.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

from bench.common import ROOT, BenchError

PEER = ROOT / "tests" / "peers" / "lighthouse"
CLI = PEER / "node_modules" / "lighthouse" / "cli" / "index.js"
CHROMIUM = "/usr/bin/chromium"
CATEGORIES = ("performance", "accessibility", "best-practices")
CHROME_FLAGS = ("--headless=new --no-sandbox --disable-gpu --disable-quic --no-first-run "
                "--disable-background-networking --disable-component-update --disable-sync")
TARGET_SCORE = 95


def npm_ci() -> None:
    """Install the pinned Lighthouse into tests/peers/lighthouse/node_modules (once)."""
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise BenchError("Lighthouse needs node and npm (Debian: apt-get install nodejs npm)")
    marker = PEER / "node_modules" / ".oo-installed"
    lock = PEER / "package-lock.json"
    if CLI.exists() and marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"], cwd=PEER,
                            capture_output=True, text=True, timeout=900, check=False)
    if result.returncode != 0:
        raise BenchError(f"npm ci in {PEER} failed:\n{result.stderr[-3000:]}")
    marker.touch()


def command(url: str, output: Path, headers: dict[str, str] | None = None) -> list[str]:
    """The Lighthouse command line (shown in docs/benchmarks.md)."""
    args = ["node", str(CLI), url, "--output=json", f"--output-path={output}",
            f"--only-categories={','.join(CATEGORIES)}", f"--chrome-flags={CHROME_FLAGS}",
            "--quiet"]
    if headers:
        args.append(f"--extra-headers={json.dumps(headers)}")
    return args


def run(url: str, output: Path, headers: dict[str, str] | None = None,
        timeout: float = 300) -> dict[str, Any]:
    """One Lighthouse run against `url`; the report (also written to `output`)."""
    npm_ci()
    output.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "CHROME_PATH": CHROMIUM}
    result = subprocess.run(command(url, output, headers), cwd=PEER, env=env, capture_output=True,
                            text=True, timeout=timeout, check=False)
    if result.returncode != 0 or not output.exists():
        raise BenchError(f"lighthouse exited with {result.returncode}:\n{result.stderr[-3000:]}")
    report: dict[str, Any] = json.loads(output.read_text())
    if report.get("runtimeError"):
        raise BenchError(f"lighthouse: {report['runtimeError']}")
    return report


# --- reading a report (pure; tests/unit/test_bench_web.py) ------------------------------------


def scores(report: dict[str, Any]) -> dict[str, float | None]:
    """Category → score 0..100 (None when Lighthouse could not score it)."""
    out: dict[str, float | None] = {}
    for name in CATEGORIES:
        score = report.get("categories", {}).get(name, {}).get("score")
        out[name] = None if score is None else round(score * 100)
    return out


def lost_points(report: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Per category, the weighted audits that did not score 1, worst first.

    Each with its id, title, score, weight and Lighthouse's displayValue (the
    measured figure, e.g. "1.2 s" or "2 elements").
    """
    audits = report.get("audits", {})
    out: dict[str, list[dict[str, Any]]] = {}
    for name in CATEGORIES:
        lost = []
        for ref in report.get("categories", {}).get(name, {}).get("auditRefs", []):
            audit = audits.get(ref["id"], {})
            score = audit.get("score")
            if ref.get("weight", 0) > 0 and score is not None and score < 1:
                lost.append({"id": ref["id"], "title": audit.get("title", ref["id"]),
                             "score": score, "weight": ref["weight"],
                             "value": audit.get("displayValue", "")})
        out[name] = sorted(lost, key=lambda a: (a["score"] - 1) * a["weight"])
    return out


METRICS = ("first-contentful-paint", "largest-contentful-paint", "speed-index",
           "total-blocking-time", "cumulative-layout-shift", "interactive")


def metrics(report: dict[str, Any]) -> dict[str, str]:
    """The performance metrics as Lighthouse displays them (simulated mobile, slow 4G)."""
    audits = report.get("audits", {})
    return {m: audits[m].get("displayValue", "") for m in METRICS if m in audits}


def relative(path: Path) -> str:
    try:
        return str(path.relative_to(ROOT))
    except ValueError:
        return str(path)
