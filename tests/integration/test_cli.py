"""The `oo` command as a person runs it."""

from __future__ import annotations

import subprocess
import sys

import pytest

from tests.conftest import oo_test_environ
from tests.helpers import ROOT

pytestmark = pytest.mark.integration
COMMANDS = [[], ["infra"], ["infra", "up"], ["infra", "down"], ["infra", "status"], ["migrate"],
            ["topics"], ["worker"], ["web"], ["dev"], ["simulate"], ["settings"],
            ["vapid"], ["vapid", "generate"], ["vapid", "public-key"],
            ["contracts"], ["contracts", "write"], ["contracts", "check"], ["contracts", "release"],
            ["vault"], ["vault", "new-key"], ["vault", "rotate"],
            ["evaluate"], ["replay"], ["metrics"]]


def oo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "oo", *args], capture_output=True, text=True, check=False,
                          env=env or oo_test_environ(), cwd=ROOT, timeout=120)


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "oo")
def test_every_command_has_help(command):
    result = oo(*command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("usage: oo")


@pytest.mark.parametrize(
    ("variable", "value"),
    [("OO_WEB_PORT", "http"), ("OO_DATABASE_URL", "mysql://x"), ("OO_ENV", "prod")],
)
def test_a_bad_setting_is_one_clear_line_not_a_traceback(variable, value):
    result = oo("settings", env={**oo_test_environ(), variable: value})
    assert result.returncode == 2
    assert result.stderr.startswith(f"oo: error: {variable}")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_settings_never_print_the_database_password():
    env = {**oo_test_environ(), "OO_DATABASE_URL": "postgresql://oo:hunter2secret@127.0.0.1:5/oo"}
    result = oo("settings", env=env)
    assert result.returncode == 0 and "hunter2secret" not in result.stdout and "***" in result.stdout


def test_infra_status_and_idempotent_up(kafka, postgres):
    result = oo("infra", "up")
    assert result.returncode == 0, result.stderr
    status = oo("infra", "status").stdout
    assert status.count("running") == 2, status


def test_a_remote_broker_is_not_managed_locally():
    result = oo("infra", "up", env={**oo_test_environ(), "OO_KAFKA_BOOTSTRAP": "kafka.example:9092"})
    assert result.returncode == 2 and "oo: error:" in result.stderr


def test_vapid_generate_writes_a_private_key_only_its_owner_can_read(tmp_path):
    key = tmp_path / "vapid" / "key.pem"
    env = {**oo_test_environ(), "OO_VAPID_PRIVATE_KEY": str(key)}
    made = oo("vapid", "generate", env=env)
    assert made.returncode == 0, made.stderr
    public = made.stdout.strip()
    assert len(public) == 87 and (key.stat().st_mode & 0o777) == 0o600
    assert oo("vapid", "public-key", env=env).stdout.strip() == public
    again = oo("vapid", "generate", env=env)
    assert again.returncode == 2 and "oo: error:" in again.stderr
