"""docs/asyncapi.yaml passes the official AsyncAPI parser (npm @asyncapi/parser).

The parser is pinned in tests/peers/asyncapi/package-lock.json and installed
there with `npm ci` on first use (again only when the lock file changes).
"""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from oo.contracts import ASYNCAPI_YAML
from tests.helpers import ROOT

pytestmark = pytest.mark.unit
PEER = ROOT / "tests" / "peers" / "asyncapi"
STAMP = PEER / "node_modules" / ".oo-installed"


@pytest.fixture(scope="module")
def node() -> str:
    """The node binary, with the pinned parser installed beside validate.js."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if not node or not npm:
        pytest.fail("node and npm are needed to validate docs/asyncapi.yaml with the AsyncAPI "
                    "parser: install Debian's nodejs and npm packages")
    lock = hashlib.sha256((PEER / "package-lock.json").read_bytes()).hexdigest()
    if not STAMP.exists() or STAMP.read_text() != lock:
        result = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--loglevel=error"],
                                cwd=PEER, capture_output=True, text=True, timeout=300, check=False)
        assert result.returncode == 0, f"npm ci in {PEER} failed:\n{result.stdout}{result.stderr}"
        STAMP.write_text(lock)
    return node


def parse(node: str, path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([node, "validate.js", str(path)], cwd=PEER, capture_output=True,
                          text=True, timeout=120, check=False)


def test_the_published_document_is_valid_asyncapi(node):
    result = parse(node, ASYNCAPI_YAML)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "is valid AsyncAPI 3.0.0 (10 channels, 10 messages)" in result.stdout
    assert "\nerror " not in "\n" + result.stdout


def test_the_parser_check_fails_on_an_invalid_document(node, tmp_path):
    broken = tmp_path / "asyncapi.yaml"
    broken.write_text(ASYNCAPI_YAML.read_text().replace("action: send", "action: publish"))
    result = parse(node, broken)
    assert result.returncode == 1
    assert "error asyncapi-document-resolved at /operations/sendTipDecided/action" in result.stdout
