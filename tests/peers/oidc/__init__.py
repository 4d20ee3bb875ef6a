"""The OpenID provider the sign-in tests talk to: panva/node-oidc-provider on loopback.

`npm ci` installs the pinned provider into tests/peers/oidc/node_modules on
first use (cached after); a machine without node or npm fails here, clearly,
rather than skipping. The provider's client for oO is confidential
(client_secret_basic) and requires PKCE; its development login form takes any
login and password (the login becomes the `sub`), and there is no consent
screen for oO.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import port
from tests.helpers import ROOT, http_get

HERE = Path(__file__).parent
PORT = port(28700)
ISSUER = f"http://127.0.0.1:{PORT}"
CLIENT_ID = "oo-test"
# The in-process test app (aiohttp TestServer) and the `oo web` of the browser test.
APP_PORT = port(28730)
BROWSER_WEB_PORT = port(28720)
REDIRECT_URIS = [f"http://127.0.0.1:{p}/auth/callback" for p in (APP_PORT, BROWSER_WEB_PORT)]
LOG = ROOT / "test-artifacts" / "oidc-provider.log"


@dataclass(frozen=True)
class OidcPeer:
    issuer: str
    client_id: str
    client_secret: str = ""

    def expire_next_id_token(self) -> None:
        """The provider's next ID token is signed with a clock an hour behind (already expired)."""
        import urllib.request

        request = urllib.request.Request(f"{self.issuer}/__test__/expire-next-id-token",
                                         method="POST", data=b"")
        with urllib.request.urlopen(request, timeout=5) as response:
            assert response.status == 204


def npm_ci() -> None:
    """Install the pinned provider once (node_modules is cached between runs)."""
    npm = shutil.which("npm")
    node = shutil.which("node")
    if npm is None or node is None:
        raise RuntimeError("the OIDC test provider needs node and npm (Debian: apt-get install "
                           "nodejs npm); they were not found on PATH")
    marker = HERE / "node_modules" / "oidc-provider" / "package.json"
    lock = HERE / "package-lock.json"
    if marker.exists() and marker.stat().st_mtime >= lock.stat().st_mtime:
        return
    result = subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=HERE,
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"npm ci for the OIDC test provider failed:\n{result.stderr[-3000:]}")
    marker.touch()


_running: list[tuple[OidcPeer, subprocess.Popen[bytes]]] = []
_users = 0


def start() -> OidcPeer:
    """Start the provider (once per test session, however many modules ask for it)."""
    global _users
    _users += 1
    if _running:
        return _running[0][0]
    npm_ci()
    secret = secrets.token_urlsafe(24)
    LOG.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OIDC_PORT": str(PORT), "OIDC_CLIENT_ID": CLIENT_ID,
           "OIDC_CLIENT_SECRET": secret, "OIDC_REDIRECT_URIS": ",".join(REDIRECT_URIS)}
    with LOG.open("wb") as out:
        process = subprocess.Popen(["node", "server.mjs"], cwd=HERE, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            raise RuntimeError(f"the OIDC provider exited with {process.returncode}:\n"
                               + LOG.read_text(errors="replace")[-3000:])
        try:
            if http_get(f"{ISSUER}/.well-known/openid-configuration")[0] == 200:
                break
        except OSError:
            pass
        if time.monotonic() > deadline:
            _stop(process)
            raise RuntimeError("the OIDC provider did not start within 30 s; see " + str(LOG))
        time.sleep(0.1)
    peer = OidcPeer(ISSUER, CLIENT_ID, secret)
    _running.append((peer, process))
    return peer


def release() -> None:
    global _users
    _users -= 1
    if _users == 0 and _running:
        _stop(_running.pop()[1])


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="session")
def oidc_provider() -> Iterator[OidcPeer]:
    """A running oidc-provider with a client for oO (started and stopped by this session).

    Test modules import this fixture; each import is its own fixture to pytest,
    so the process itself is shared here.
    """
    peer = start()
    try:
        yield peer
    finally:
        release()
