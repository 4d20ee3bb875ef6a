"""docker-compose.yml can't be started here (no Docker engine); check it agrees with the code."""

import re
from pathlib import Path

import pytest
import yaml

from oo.settings import VARIABLES, Settings

pytestmark = pytest.mark.unit
ROOT = Path(__file__).resolve().parents[2]
COMPOSE = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
SERVICES = COMPOSE["services"]


def resolved_env(service: str, given: dict[str, str] | None = None) -> dict[str, str]:
    """The service's environment with ${VAR:?msg} and ${VAR:-default} substituted as compose would."""
    env = {k: str(v) for k, v in SERVICES[service]["environment"].items()}
    given = {"OO_POSTGRES_PASSWORD": "secret", "OO_VAPID_SUBJECT": "mailto:ops@example.org",
             **(given or {})}

    def value(match: re.Match[str]) -> str:
        name, how, default = match.groups()
        return given[name] if how == "?" else given.get(name) or default

    return {k: re.sub(r"\$\{(\w+):([?-])([^}]*)\}", value, v) for k, v in env.items()}


def test_compose_has_the_whole_stack_with_healthchecks():
    assert {"kafka", "postgres", "migrate", "worker", "web"} <= set(SERVICES)
    for name in ("kafka", "postgres", "worker", "web"):
        assert "healthcheck" in SERVICES[name], name


def test_kafka_image_matches_the_version_the_local_scripts_run():
    default = Settings.from_env({}).kafka_version
    assert SERVICES["kafka"]["image"] == f"apache/kafka:{default}"
    env = SERVICES["kafka"]["environment"]
    assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert env["KAFKA_AUTO_CREATE_TOPICS_ENABLE"] == "false"


@pytest.mark.parametrize("service", ["migrate", "worker", "web"])
def test_oo_services_use_only_known_settings_and_they_validate(service):
    env = resolved_env(service)
    unknown = set(env) - set(VARIABLES)
    assert not unknown, f"{service} sets variables the settings module does not read: {unknown}"
    settings = Settings.from_env(env)
    assert settings.kafka_bootstrap_servers == "kafka:9092"
    assert settings.database.host == "postgres" and settings.database.port == 5432


def test_app_services_wait_for_their_dependencies():
    for name in ("worker", "web"):
        depends = SERVICES[name]["depends_on"]
        assert depends["kafka"]["condition"] == "service_healthy"
        assert depends["migrate"]["condition"] == "service_completed_successfully"
    assert SERVICES["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_published_web_port_is_the_configured_one():
    settings = Settings.from_env(resolved_env("web"))
    published = SERVICES["web"]["ports"][0]
    assert published.endswith(f":{settings.web_port}")
    assert f":{settings.worker_web_port}/ready" in str(SERVICES["worker"]["healthcheck"]["test"])
    assert Settings.from_env(resolved_env("worker")).worker_web_port == 6066


def test_the_worker_web_server_stays_inside_its_container_and_metrics_take_a_token():
    worker = Settings.from_env(resolved_env("worker"))
    assert worker.worker_web_host == "127.0.0.1"
    assert "ports" not in SERVICES["worker"]
    for service in ("worker", "web"):
        assert Settings.from_env(resolved_env(service)).metrics_token is None  # metrics off
        token = "a-token-from-the-environment-0123"
        given = {"OO_METRICS_TOKEN": token}
        assert Settings.from_env(resolved_env(service, given)).metrics_token == token


def test_no_secret_is_written_in_the_file():
    text = (ROOT / "docker-compose.yml").read_text()
    assert "POSTGRES_PASSWORD: ${OO_POSTGRES_PASSWORD:?" in text
    assert not re.search(r"(?i)password\s*[:=]\s*['\"]?[a-z0-9]{4,}", text.replace("${OO_POSTGRES_PASSWORD", ""))


def test_the_settings_docstring_documents_every_variable():
    import oo.settings

    documented = set(re.findall(r"^\| (OO_[A-Z_]+) \|", oo.settings.__doc__, re.M))
    assert documented == set(VARIABLES)
