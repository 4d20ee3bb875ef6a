#!/usr/bin/env bash
# Install what oO needs on a fresh Debian machine, idempotently:
#   system packages (JDK, Maven, PostgreSQL, Chromium) from Debian, and a Python venv in .venv.
# Kafka's jars are fetched from Maven Central by `oo infra up` on first use.
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf 'bootstrap: %s\n' "$*"; }

# --- system packages ---------------------------------------------------------
missing=()
command -v java >/dev/null 2>&1 && java -version 2>&1 | grep -Eq 'version "(1[7-9]|[2-9][0-9])' \
  || missing+=(openjdk-17-jdk-headless)
command -v mvn >/dev/null 2>&1 || missing+=(maven)
# The server, not just pg_config (libpq-dev ships pg_config without a server).
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  missing+=(postgresql)
fi
# Browser tests drive Debian's Chromium with Playwright (never a downloaded browser).
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
# Test peers from the npm registry (the OpenID provider, the AsyncAPI parser).
command -v node >/dev/null 2>&1 || missing+=(nodejs)
command -v npm >/dev/null 2>&1 || missing+=(npm)
command -v runuser >/dev/null 2>&1 || missing+=(util-linux)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)

if ((${#missing[@]})); then
  say "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" -eq 0 ]; then SUDO=(); elif command -v sudo >/dev/null; then SUDO=(sudo); else
    say "error: need root (or sudo) to install: ${missing[*]}"; exit 2
  fi
  export DEBIAN_FRONTEND=noninteractive
  "${SUDO[@]}" apt-get update -qq
  "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts a system cluster on 5432 when it installs postgresql; oO runs its own
  # cluster on its own port and does not need it.
fi

# --- Python ---------------------------------------------------------------
PYTHON=${PYTHON:-python3}
"$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' || {
  say "error: oO needs Python >= 3.11 (found $("$PYTHON" --version 2>&1)); set PYTHON=/path/to/python3.11"; exit 2; }
stamp=.venv/.oo-installed
want=$(sha256sum pyproject.toml | cut -c1-16)
if [ ! -x .venv/bin/python ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "creating .venv and installing oO with its test tools (first time takes a minute)"
  [ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
  .venv/bin/python -m pip install -q -e '.[test,dev]'
  echo "$want" > "$stamp"
fi
say "ready"
