"""Every setting oO reads, in one place, from environment variables.

`Settings.from_env()` is the only reader of `os.environ` for configuration.
A missing or invalid value raises `SettingsError` with one line naming the
variable, the bad value and what is expected; the CLI prints that line and
exits 2 (no traceback).

| variable | default | meaning |
|---|---|---|
| OO_ENV | dev | dev, test or production |
| OO_KAFKA_BOOTSTRAP | 127.0.0.1:19092 | Kafka bootstrap servers, comma-separated host:port |
| OO_DATABASE_URL | postgresql://oo@127.0.0.1:15432/oo | PostgreSQL DSN |
| OO_WEB_HOST | 127.0.0.1 | address the web app binds |
| OO_WEB_PORT | 8080 | port of the web app (PWA + API) |
| OO_WORKER_WEB_PORT | 6066 | port of the worker's health/metrics web server |
| OO_WORKER_WEB_HOST | 127.0.0.1 | address the worker's health/metrics web server binds (an internal interface, never a public one) |
| OO_METRICS_TOKEN | (none: `/metrics` only from loopback in dev and test, off in production) | bearer token `/metrics` of the web app and the worker require (at least 16 characters; masked in `oo settings`) |
| OO_TOPIC_PARTITIONS | 4 | partitions of every user-keyed topic (co-partitioned) |
| OO_TOPIC_REPLICATION | 1 | replication factor of created topics |
| OO_TABLE_STORE | rocksdb:// | Faust table store: rocksdb:// or memory:// |
| OO_APP_ID | oo | Faust application id (consumer group, changelog prefix) |
| OO_STATE_DIR | /var/tmp/oo-<user> | data of the local Kafka/PostgreSQL and worker tables |
| OO_CACHE_DIR | ~/.cache/oo | downloaded Kafka jars (reused between runs) |
| OO_KAFKA_VERSION | 4.1.1 | Apache Kafka version the local broker runs |
| OO_LOG_LEVEL | info | debug, info, warning or error |
| OO_POLICY | random | the live policy that picks tips (see `domain.policies`) |
| OO_SHADOW_POLICIES | (none) | comma-separated policies run beside the live one, logged, never sent |
| OO_FORGET_WINDOW_S | 86400 | seconds a deleted person's forgotten marker (their id and the deletion time, nothing else) drops their late signals before it too is purged |
| OO_VAPID_PRIVATE_KEY | <OO_STATE_DIR>/vapid/private_key.pem | VAPID private key (PEM, mode 0600; `oo vapid generate`) |
| OO_VAPID_SUBJECT | mailto:oo@localhost (dev, test); required in production | VAPID `sub`: mailto: or https: contact |
| OO_PUSH_CA_FILE | (none) | an extra CA the notifier trusts (dev and test only: the local push service) |
| OO_DEV_PUSH_PORT | 18443 | port of the local push service `oo dev` starts (HTTPS, its own test CA) |
| OO_PUSH_EXTRA_HOSTS | (none) | comma-separated host[:port] push services allowed beside the defaults (dev and test) |
| OO_PUBLIC_URL | http://<OO_WEB_HOST>:<OO_WEB_PORT> | the URL people reach the web app at; OAuth redirects come back to it (https in production) |
| OO_OIDC_ISSUER | https://accounts.google.com | the OpenID Connect provider people sign in with (its discovery document is read) |
| OO_OIDC_CLIENT_ID | (none: sign-in shows "not configured") | oO's client id at that provider |
| OO_OIDC_CLIENT_SECRET | (none) | oO's client secret at that provider (masked in `oo settings`) |
| OO_VAULT_KEYS | (none: connectors show "not configured") | keys sealing connector tokens: comma-separated `kid:base64key` (32 bytes each), the current one first; `oo vault rotate` re-seals under it |
| OO_TODOIST_CLIENT_ID | (none: Todoist shows "not configured") | oO's Todoist app client id |
| OO_TODOIST_CLIENT_SECRET | (none) | oO's Todoist app client secret (masked in `oo settings`) |
| OO_TODOIST_AUTH_URL | https://todoist.com | base of Todoist's OAuth endpoints (/oauth/authorize, /oauth/access_token) |
| OO_TODOIST_API_URL | https://api.todoist.com | base of Todoist's API v1 (/api/v1/sync, /api/v1/access_tokens/revoke) |
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
import base64
import binascii
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

ENVIRONMENTS = ("dev", "test", "production")
VARIABLES = (
    "OO_ENV", "OO_KAFKA_BOOTSTRAP", "OO_DATABASE_URL", "OO_WEB_HOST", "OO_WEB_PORT",
    "OO_WORKER_WEB_PORT", "OO_WORKER_WEB_HOST", "OO_METRICS_TOKEN", "OO_TOPIC_PARTITIONS", "OO_TOPIC_REPLICATION", "OO_TABLE_STORE",
    "OO_APP_ID", "OO_STATE_DIR", "OO_CACHE_DIR", "OO_KAFKA_VERSION", "OO_LOG_LEVEL",
    "OO_POLICY", "OO_SHADOW_POLICIES", "OO_FORGET_WINDOW_S", "OO_VAPID_PRIVATE_KEY", "OO_VAPID_SUBJECT",
    "OO_PUSH_CA_FILE", "OO_PUSH_EXTRA_HOSTS", "OO_DEV_PUSH_PORT",
    "OO_PUBLIC_URL", "OO_OIDC_ISSUER", "OO_OIDC_CLIENT_ID", "OO_OIDC_CLIENT_SECRET",
    "OO_VAULT_KEYS", "OO_TODOIST_CLIENT_ID", "OO_TODOIST_CLIENT_SECRET", "OO_TODOIST_AUTH_URL",
    "OO_TODOIST_API_URL",
)
SECRETS = ("oidc_client_secret", "todoist_client_secret", "vault_keys", "metrics_token")  # masked by redacted()
LOG_LEVELS = ("debug", "info", "warning", "error")
TABLE_STORES = ("rocksdb://", "memory://")


class SettingsError(ValueError):
    """A setting is missing or invalid; the message is one line naming the variable."""


@dataclass(frozen=True)
class HostPort:
    host: str
    port: int

    def __str__(self) -> str:
        return f"{self.host}:{self.port}"


@dataclass(frozen=True)
class Settings:
    """Validated configuration of one oO process."""

    env: str
    kafka_bootstrap: tuple[HostPort, ...]
    database_url: str
    web_host: str
    web_port: int
    worker_web_port: int
    topic_partitions: int
    topic_replication: int
    table_store: str
    app_id: str
    state_dir: Path
    cache_dir: Path
    kafka_version: str
    log_level: str
    policy: str
    shadow_policies: tuple[str, ...]
    vapid_private_key: Path
    vapid_subject: str
    push_ca_file: Path | None
    push_extra_hosts: tuple[str, ...]
    dev_push_port: int
    public_url: str = "http://127.0.0.1:8080"
    oidc_issuer: str = "https://accounts.google.com"
    oidc_client_id: str | None = None
    oidc_client_secret: str | None = field(default=None, repr=False)
    # (key id, 32-byte key), the current key first; see adapters/vault.py.
    vault_keys: tuple[tuple[str, bytes], ...] = field(default=(), repr=False)
    todoist_client_id: str | None = None
    todoist_client_secret: str | None = field(default=None, repr=False)
    todoist_auth_url: str = "https://todoist.com"
    todoist_api_url: str = "https://api.todoist.com"
    forget_window_s: int = 86400
    worker_web_host: str = "127.0.0.1"
    metrics_token: str | None = field(default=None, repr=False)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Settings:
        """Read and validate every setting; raise SettingsError on the first bad one."""
        env = os.environ if environ is None else environ
        reader = _Reader(env)
        mode = reader.choice("OO_ENV", "dev", ENVIRONMENTS)
        state_dir = reader.path("OO_STATE_DIR", Path("/var/tmp") / f"oo-{_user()}")
        settings = cls(
            env=mode,
            kafka_bootstrap=reader.bootstrap("OO_KAFKA_BOOTSTRAP", "127.0.0.1:19092"),
            database_url=reader.database_url("OO_DATABASE_URL", "postgresql://oo@127.0.0.1:15432/oo"),
            web_host=reader.text("OO_WEB_HOST", "127.0.0.1"),
            web_port=reader.port("OO_WEB_PORT", 8080),
            worker_web_port=reader.port("OO_WORKER_WEB_PORT", 6066),
            topic_partitions=reader.integer("OO_TOPIC_PARTITIONS", 4, low=1, high=1024),
            topic_replication=reader.integer("OO_TOPIC_REPLICATION", 1, low=1, high=16),
            table_store=reader.choice("OO_TABLE_STORE", "rocksdb://", TABLE_STORES),
            app_id=reader.identifier("OO_APP_ID", "oo"),
            state_dir=state_dir,
            cache_dir=reader.path("OO_CACHE_DIR", Path.home() / ".cache" / "oo"),
            kafka_version=reader.version("OO_KAFKA_VERSION", "4.1.1"),
            log_level=reader.choice("OO_LOG_LEVEL", "info", LOG_LEVELS),
            policy=reader.policy("OO_POLICY", "random"),
            shadow_policies=reader.policies("OO_SHADOW_POLICIES"),
            vapid_private_key=reader.path("OO_VAPID_PRIVATE_KEY",
                                          state_dir / "vapid" / "private_key.pem"),
            vapid_subject=reader.vapid_subject("OO_VAPID_SUBJECT", mode),
            push_ca_file=reader.optional_path("OO_PUSH_CA_FILE"),
            push_extra_hosts=reader.host_list("OO_PUSH_EXTRA_HOSTS"),
            dev_push_port=reader.port("OO_DEV_PUSH_PORT", 18443),
            public_url=reader.base_url("OO_PUBLIC_URL", _local_url(env), mode),
            oidc_issuer=reader.base_url("OO_OIDC_ISSUER", "https://accounts.google.com", mode),
            oidc_client_id=reader.optional("OO_OIDC_CLIENT_ID"),
            oidc_client_secret=reader.optional("OO_OIDC_CLIENT_SECRET"),
            vault_keys=reader.vault_keys("OO_VAULT_KEYS"),
            todoist_client_id=reader.optional("OO_TODOIST_CLIENT_ID"),
            todoist_client_secret=reader.optional("OO_TODOIST_CLIENT_SECRET"),
            todoist_auth_url=reader.base_url("OO_TODOIST_AUTH_URL", "https://todoist.com", mode),
            todoist_api_url=reader.base_url("OO_TODOIST_API_URL", "https://api.todoist.com", mode),
            forget_window_s=reader.integer("OO_FORGET_WINDOW_S", 86400, low=1, high=90 * 86400),
            worker_web_host=reader.text("OO_WORKER_WEB_HOST", "127.0.0.1"),
            metrics_token=reader.token("OO_METRICS_TOKEN", min_len=16),
        )
        for client, secret in (("OO_OIDC_CLIENT_ID", "OO_OIDC_CLIENT_SECRET"),
                               ("OO_TODOIST_CLIENT_ID", "OO_TODOIST_CLIENT_SECRET")):
            if (env.get(client) is None) != (env.get(secret) is None):
                raise SettingsError(f"{client} and {secret} go together; set both or neither")
        if (mode == "production" and (settings.oidc_configured or settings.todoist_configured)
                and not settings.public_url.startswith("https://")):
            raise SettingsError(f"OO_PUBLIC_URL={settings.public_url!r} must be https:// in "
                                "production (sign-in and connectors redirect to it)")
        if mode == "production" and (settings.push_ca_file or settings.push_extra_hosts):
            raise SettingsError("OO_PUSH_CA_FILE and OO_PUSH_EXTRA_HOSTS are for dev and test "
                                "only; unset them in production")
        if settings.web_port == settings.worker_web_port:
            raise SettingsError(
                f"OO_WEB_PORT and OO_WORKER_WEB_PORT are both {settings.web_port}; they must differ"
            )
        return settings

    @property
    def oidc_configured(self) -> bool:
        """Sign-in works only with a client id and secret at the provider."""
        return bool(self.oidc_client_id and self.oidc_client_secret)

    @property
    def todoist_configured(self) -> bool:
        """Todoist can be connected only with its app credentials and a vault key."""
        return bool(self.todoist_client_id and self.todoist_client_secret and self.vault_keys)

    @property
    def kafka_bootstrap_servers(self) -> str:
        """The bootstrap list in the form Kafka clients take."""
        return ",".join(str(hp) for hp in self.kafka_bootstrap)

    @property
    def database(self) -> DatabaseTarget:
        return DatabaseTarget.parse(self.database_url)

    def redacted(self) -> dict[str, str]:
        """Every setting as text, with any password in the database URL masked."""
        values = {name: str(value) for name, value in vars(self).items()}
        parts = urlsplit(self.database_url)
        if parts.password:
            values["database_url"] = self.database_url.replace(f":{parts.password}@", ":***@", 1)
        values["kafka_bootstrap"] = self.kafka_bootstrap_servers
        for name in SECRETS:
            if getattr(self, name):
                values[name] = "***"
        if self.vault_keys:
            values["vault_keys"] = ",".join(f"{kid}:***" for kid, _ in self.vault_keys)
        return values

    @property
    def web_url(self) -> str:
        host = "127.0.0.1" if self.web_host in ("0.0.0.0", "") else self.web_host
        return f"http://{host}:{self.web_port}/"


@dataclass(frozen=True)
class DatabaseTarget:
    """The parts of OO_DATABASE_URL the local PostgreSQL scripts need."""

    host: str
    port: int
    user: str
    name: str

    @classmethod
    def parse(cls, url: str) -> DatabaseTarget:
        parts = urlsplit(url)
        return cls(
            host=parts.hostname or "127.0.0.1",
            port=parts.port or 5432,
            user=parts.username or "oo",
            name=(parts.path or "/oo").lstrip("/") or "oo",
        )


def _local_url(env: Mapping[str, str]) -> str:
    host = env.get("OO_WEB_HOST", "").strip() or "127.0.0.1"
    host = "127.0.0.1" if host == "0.0.0.0" else host
    return f"http://{host}:{env.get('OO_WEB_PORT', '').strip() or 8080}"


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())


class _Reader:
    """Reads one variable at a time and turns problems into one-line SettingsErrors."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self._env = env

    def _raw(self, name: str) -> str | None:
        value = self._env.get(name)
        if value is None:
            return None
        value = value.strip()
        if not value:
            raise SettingsError(f"{name} is set but empty; unset it to use the default or give a value")
        return value

    def text(self, name: str, default: str) -> str:
        return self._raw(name) or default

    def choice(self, name: str, default: str, allowed: tuple[str, ...]) -> str:
        value = self._raw(name)
        if value is None:
            return default
        if value not in allowed:
            raise SettingsError(f"{name}={value!r} is invalid; expected one of {', '.join(allowed)}")
        return value

    def integer(self, name: str, default: int, *, low: int, high: int) -> int:
        value = self._raw(name)
        if value is None:
            return default
        try:
            number = int(value)
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not an integer") from None
        if not low <= number <= high:
            raise SettingsError(f"{name}={number} is out of range; expected {low}..{high}")
        return number

    def port(self, name: str, default: int) -> int:
        return self.integer(name, default, low=1, high=65535)

    def path(self, name: str, default: Path) -> Path:
        value = self._raw(name)
        return Path(value).expanduser() if value else default

    def identifier(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        if not all(c.isalnum() or c in "-_." for c in value):
            raise SettingsError(f"{name}={value!r} may contain only letters, digits, '-', '_' and '.'")
        return value

    def version(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        pieces = value.split(".")
        if len(pieces) != 3 or not all(p.isdigit() for p in pieces):
            raise SettingsError(f"{name}={value!r} is not a version like 4.1.1")
        if int(pieces[0]) < 4:
            raise SettingsError(f"{name}={value!r}: oO runs Apache Kafka 4.x or newer (KRaft only)")
        return value

    def host_list(self, name: str) -> tuple[str, ...]:
        value = self._env.get(name, "").strip()
        hosts = tuple(h.strip() for h in value.split(",") if h.strip())
        for host in hosts:
            if "/" in host or "@" in host or " " in host:
                raise SettingsError(f"{name} entry {host!r} is not host[:port]")
        return hosts

    def optional(self, name: str) -> str | None:
        return self._raw(name)

    def token(self, name: str, *, min_len: int) -> str | None:
        """A secret of printable ASCII without spaces; empty counts as unset.

        Empty is allowed (unlike other settings) so docker-compose can pass
        `${OO_METRICS_TOKEN:-}` through without making it required.
        """
        value = self._env.get(name, "").strip()
        if not value:
            return None
        if len(value) < min_len or not all("!" <= c <= "~" for c in value):
            # The value is a secret: the message never quotes it.
            raise SettingsError(f"{name} must be at least {min_len} printable ASCII characters "
                                "without spaces (e.g. `openssl rand -hex 24`)")
        return value

    def base_url(self, name: str, default: str, mode: str) -> str:
        """An absolute http(s) URL without query or fragment, no trailing slash; https in production."""
        value = (self._raw(name) or default).rstrip("/")
        try:
            parts = urlsplit(value)
            _ = parts.port
        except ValueError:
            raise SettingsError(f"{name}={value!r} is not a URL") from None
        if parts.scheme not in ("http", "https") or not parts.hostname or parts.query \
                or parts.fragment or parts.username or parts.password:
            raise SettingsError(f"{name}={value!r} must be an absolute http(s) URL without "
                                "credentials, query or fragment")
        if mode == "production" and parts.scheme != "https" and value != default:
            raise SettingsError(f"{name}={value!r} must be https:// in production")
        return value

    def vault_keys(self, name: str) -> tuple[tuple[str, bytes], ...]:
        value = self._env.get(name, "").strip()
        if not value:
            return ()
        keys: list[tuple[str, bytes]] = []
        for position, item in enumerate(value.split(","), 1):
            kid, sep, encoded = item.strip().partition(":")
            if not sep or not kid or not all(c.isalnum() or c in "-_." for c in kid) \
                    or len(kid) > 32:
                raise SettingsError(f"{name} entry {position} is not kid:base64key (kid: up to 32 "
                                    "letters, digits, '-', '_', '.')")
            try:
                key = base64.b64decode(encoded + "=" * (-len(encoded) % 4),
                                       altchars=b"-_" if "-" in encoded or "_" in encoded else None,
                                       validate=True)
            except (binascii.Error, ValueError):
                raise SettingsError(f"{name} key {kid!r} is not base64") from None
            if len(key) != 32:
                raise SettingsError(f"{name} key {kid!r} is {len(key)} bytes; a key is 32 random "
                                    "bytes (`oo vault new-key` prints one)")
            if any(kid == seen for seen, _ in keys):
                raise SettingsError(f"{name} names key {kid!r} twice")
            keys.append((kid, key))
        return tuple(keys)

    def optional_path(self, name: str) -> Path | None:
        value = self._raw(name)
        return Path(value).expanduser() if value else None

    def vapid_subject(self, name: str, mode: str) -> str:
        value = self._raw(name)
        if value is None:
            if mode == "production":
                raise SettingsError(f"{name} is required in production (e.g. mailto:ops@example.org)")
            return "mailto:oo@localhost"
        from oo.vapid import is_valid_subject

        if not is_valid_subject(value):
            raise SettingsError(f"{name}={value!r} must be mailto:user@host or https://host")
        return value

    def policy(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        from domain.policies import names  # the registry is the one list of policies

        if value not in names():
            raise SettingsError(f"{name}={value!r} is not a policy; known: {', '.join(names())}")
        return value

    def policies(self, name: str) -> tuple[str, ...]:
        value = self._env.get(name, "").strip()
        if not value:
            return ()
        from domain.policies import names

        picked = tuple(p.strip() for p in value.split(",") if p.strip())
        unknown = [p for p in picked if p not in names()]
        if unknown:
            raise SettingsError(f"{name} names unknown policies {unknown}; known: {', '.join(names())}")
        return picked

    def bootstrap(self, name: str, default: str) -> tuple[HostPort, ...]:
        value = self._raw(name) or default
        servers = []
        for item in value.split(","):
            host, sep, port = item.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise SettingsError(f"{name}={value!r} is invalid; expected host:port[,host:port...]")
            servers.append(HostPort(host.strip("[]"), int(port)))
        return tuple(servers)

    def database_url(self, name: str, default: str) -> str:
        value = self._raw(name) or default
        parts = urlsplit(value)
        if parts.scheme not in ("postgresql", "postgres"):
            raise SettingsError(f"{name} must start with postgresql:// (got scheme {parts.scheme!r})")
        try:
            _ = parts.port  # urlsplit validates the port lazily
        except ValueError:
            raise SettingsError(f"{name} has an invalid port") from None
        if not parts.hostname:
            raise SettingsError(f"{name} has no host; expected postgresql://user@host:port/database")
        return value
