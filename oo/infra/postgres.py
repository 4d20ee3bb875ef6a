"""A throwaway local PostgreSQL cluster for development and tests, no Docker.

`LocalPostgres.up()` runs `initdb` once into `<OO_STATE_DIR>/postgres/data`
(outside git), starts the server on the host and port of OO_DATABASE_URL,
waits until it accepts connections, and makes sure the role and database of
that URL exist. A second `up` finds the server running and returns False.
`down()` stops it with `pg_ctl stop -m fast`; the data stays for the next `up`.

Layout under `<OO_STATE_DIR>/postgres/`:

    data/            the cluster (PGDATA); oo.conf and pg_hba.conf are ours
    socket/          the unix socket, so it never clashes with a system
                     cluster's /var/run/postgresql
    postgres.log     server log (its tail is shown when something fails)
    up.lock          serializes concurrent `up`/`down` calls

The cluster is for development only: it listens on loopback, lets anyone on
this machine connect over TCP without a password, and runs with fsync off.

PostgreSQL refuses to run as root, so as root every server-side program runs
as the `postgres` system user (made by Debian's package), or as `oo-postgres`
(created here) when that user does not exist; as anyone else it runs as the
current user.

Debian packages relied on: postgresql (server binaries and psql, any version
13 or newer), util-linux (runuser) and passwd (useradd) which every Debian
system has.
"""

from __future__ import annotations

import fcntl
import ipaddress
import os
import pwd
import re
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from oo.infra.common import (
    InfraError,
    Log,
    ServiceStatus,
    port_open,
    read_pid,
    tail,
    wait_until,
)
from oo.settings import Settings

NAME = "postgres"
# gen_random_uuid() is built in from 13 on; the migrations rely on it.
MIN_MAJOR = 13
# The system user PostgreSQL runs as when we are root: Debian's, else our own.
SYSTEM_USERS = ("postgres", "oo-postgres")
# sizeof(sockaddr_un.sun_path) on Linux; PostgreSQL refuses longer socket paths.
SUN_PATH_MAX = 108
REQUIRED_PROGRAMS = ("initdb", "pg_ctl", "postgres", "psql", "pg_isready")
INSTALL_HINT = "install it with `apt-get install postgresql` (any version 13 or newer)"


@dataclass
class LocalPostgres:
    """One local PostgreSQL cluster: its folders, address, role and database."""

    host: str
    port: int
    user: str
    database: str
    root: Path
    log: Log = print
    _bindir: Path | None = field(default=None, init=False, repr=False)
    _os_user: str | None = field(default=None, init=False, repr=False)
    _major: int | None = field(default=None, init=False, repr=False)

    @classmethod
    def from_settings(cls, settings: Settings, log: Log = print) -> LocalPostgres:
        """The cluster OO_DATABASE_URL and OO_STATE_DIR describe (nothing is touched yet)."""
        target = settings.database
        return cls(
            host=target.host,
            port=target.port,
            user=target.user,
            database=target.name,
            root=settings.state_dir / "postgres",
            log=log,
        )

    # --- paths -------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def log_file(self) -> Path:
        return self.root / "postgres.log"

    @property
    def address(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    # --- public interface --------------------------------------------------

    def up(self, timeout: float = 60) -> bool:
        """Start the cluster if needed and make sure the role and database exist.

        Returns True if this call started the server, False if it was running.
        Raises InfraError with an actionable message (and the log tail when the
        server itself failed).
        """
        self._check_loopback()
        deadline = time.monotonic() + timeout
        self.root.mkdir(parents=True, exist_ok=True)
        self._check_owner()
        with self._lock(timeout):
            pid = self._running_pid()
            if pid is not None:
                self._check_running_port(pid)
                self._wait_ready(deadline)
                self._ensure_role_and_database()
                self.log(f"postgres: already running on {self.address} (pid {pid})")
                return False

            self._check_major_supported()
            self._prepare_folders()
            if _port_in_use(self.host, self.port):
                raise InfraError(
                    f"port {self.port} on {self.host} is already in use by another program; "
                    f"stop it or choose another port in OO_DATABASE_URL"
                )
            if not (self.data_dir / "PG_VERSION").exists():
                self._initdb()
            else:
                self._check_data_version()
            self._write_config()
            self._start(deadline)
            self._wait_ready(deadline)
            self._ensure_role_and_database()
            self.log(f"postgres: running on {self.address}, database {self.database!r} "
                     f"(user {self.user!r}), data in {self.data_dir}")
            return True

    def down(self, timeout: float = 30) -> bool:
        """Stop the cluster (fast shutdown: open sessions are rolled back).

        Returns True if a running server was stopped, False if none was running.
        """
        if not self.root.exists():
            return False
        self._check_owner()
        with self._lock(timeout):
            pid = self._running_pid()
            if pid is None:
                self.log("postgres: not running")
                return False
            self.log(f"postgres: stopping (pid {pid})")
            result = self._run(
                [self._program("pg_ctl"), "stop", "-D", str(self.data_dir), "-m", "fast",
                 "-w", "-t", str(max(1, int(timeout)))],
                timeout=timeout + 10,
            )
            if result.returncode != 0:
                raise InfraError(
                    f"pg_ctl stop failed for {self.data_dir}: {_one_line(result.stderr)}; "
                    f"log {self.log_file}:\n{tail(self.log_file)}"
                )
            self.log("postgres: stopped")
            return True

    def status(self) -> ServiceStatus:
        """Whether the server runs (from its postmaster.pid), and where."""
        pid = self._running_pid()
        if pid is not None:
            detail = f"database {self.database} (user {self.user})"
        elif _exists(self.data_dir / "PG_VERSION"):
            detail = f"data in {self.data_dir}"
        else:
            detail = "not initialized"
        return ServiceStatus(NAME, pid is not None, pid, self.address, detail)

    # --- checks --------------------------------------------------------------

    def _check_loopback(self) -> None:
        # Trust authentication is only acceptable when nothing off this machine
        # can reach the server.
        if not _is_loopback(self.host):
            raise InfraError(
                f"OO_DATABASE_URL host {self.host!r} is not a loopback address; the local "
                f"PostgreSQL only listens on 127.0.0.1, ::1 or localhost"
            )

    def _check_owner(self) -> None:
        # Without root we cannot hand a folder over, so it must already be ours.
        owner = self.root.stat().st_uid
        if os.geteuid() != 0 and owner != os.geteuid():
            raise InfraError(
                f"{self.root} belongs to another user (uid {owner}); run as root or as that "
                f"user, or choose another OO_STATE_DIR"
            )

    def _running_pid(self) -> int | None:
        """The postmaster's pid if the server of this data folder is alive."""
        try:
            pid = read_pid(self.data_dir / "postmaster.pid")
        except PermissionError:
            # Another user's cluster (0700 data folder): not ours to report on.
            return None
        if pid is None:
            return None
        # A stale postmaster.pid whose pid was reused by an unrelated program
        # must not count as a running server.
        try:
            comm = Path(f"/proc/{pid}/comm").read_text().strip()
        except OSError:
            return pid
        return pid if comm.startswith(("postgres", "postmaster")) else None

    def _check_running_port(self, pid: int) -> None:
        # postmaster.pid: pid, data dir, start time, port, socket dir, listen addr, ...
        try:
            lines = (self.data_dir / "postmaster.pid").read_text().splitlines()
            running_port = int(lines[3])
        except (OSError, IndexError, ValueError):
            return
        if running_port != self.port:
            raise InfraError(
                f"the local PostgreSQL (pid {pid}) runs on port {running_port}, but "
                f"OO_DATABASE_URL says {self.port}; run `oo infra down` first, then `oo infra up`"
            )

    def _check_data_version(self) -> None:
        data_major = (self.data_dir / "PG_VERSION").read_text().strip()
        binary_major = self._major_version()
        if data_major != str(binary_major):
            raise InfraError(
                f"{self.data_dir} was created by PostgreSQL {data_major} but the installed "
                f"server is {binary_major}; it is a throwaway cluster: delete {self.root} "
                f"and run `oo infra up` again (or install postgresql-{data_major})"
            )

    # --- provisioning --------------------------------------------------------

    def _prepare_folders(self) -> None:
        """Create our folders, owned by the user the server runs as."""
        owner = self._cluster_user()
        entry = pwd.getpwnam(owner)
        if os.geteuid() == 0:
            _make_traversable(self.root.parent, entry, self.log)
            _chown_tree_if_needed(self.root, entry.pw_uid, entry.pw_gid)
        # Only the server's user needs to see inside (the data folder must be 0700 anyway).
        os.chmod(self.root, 0o700)
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(self.socket_dir, entry.pw_uid, entry.pw_gid)
        socket_path = self.socket_dir / f".s.PGSQL.{self.port}"
        if len(str(socket_path).encode()) >= SUN_PATH_MAX:
            raise InfraError(
                f"the unix socket path {socket_path} is longer than {SUN_PATH_MAX - 1} bytes; "
                f"choose a shorter OO_STATE_DIR"
            )

    def _initdb(self) -> None:
        """Create the cluster in a scratch folder, then rename it into place.

        The rename makes an interrupted initdb leave no half-made data folder
        that a later `up` would mistake for a cluster.
        """
        scratch = self.root / "data.initdb"
        if scratch.exists():
            shutil.rmtree(scratch)
        if self.data_dir.exists():
            # A data folder without PG_VERSION is not a cluster (nothing to keep).
            if any(self.data_dir.iterdir()):
                raise InfraError(
                    f"{self.data_dir} exists but holds no PostgreSQL cluster; "
                    f"delete it and run `oo infra up` again"
                )
            self.data_dir.rmdir()
        owner = self._cluster_user()
        self.log(f"postgres: initializing a cluster in {self.data_dir} (as user {owner})")
        result = self._run(
            [self._program("initdb"), "-D", str(scratch), f"--username={owner}",
             "--encoding=UTF8", "--no-locale", "--auth-local=peer", "--auth-host=trust",
             # A throwaway cluster: skipping the fsync of every new file saves seconds.
             "--no-sync"],
            timeout=300,
        )
        if result.returncode != 0:
            shutil.rmtree(scratch, ignore_errors=True)
            raise InfraError(f"initdb failed: {_one_line(result.stderr or result.stdout)}")
        with (scratch / "postgresql.conf").open("a") as conf:
            conf.write("\n# Settings of oO's local cluster, rewritten on every `oo infra up`.\n"
                       "include_if_exists = 'oo.conf'\n")
        scratch.rename(self.data_dir)

    def _write_config(self) -> None:
        """Write oo.conf and pg_hba.conf; done on every start so they follow the settings."""
        listen = "localhost" if self.host == "localhost" else self.host
        settings = {
            "listen_addresses": listen,
            "port": self.port,
            "unix_socket_directories": str(self.socket_dir),
            "unix_socket_permissions": "0700",  # only the server's user uses the socket
            # Tests run many pools at once; the default of 100 is tight.
            "max_connections": 200,
            # A throwaway cluster: losing it in a machine crash is fine, so skip
            # the disk flushes that make tests slow...
            "fsync": "off",
            "full_page_writes": "off",
            # ...but keep commit semantics as in production, so a test that
            # passes here does not rely on asynchronous commit.
            "synchronous_commit": "on",
            "timezone": "UTC",
            "log_timezone": "UTC",
            "log_line_prefix": "%m [%p] %q%u@%d ",
            "logging_collector": "off",
        }
        lines = ["# Written by oo.infra.postgres on every `oo infra up`; edits are lost."]
        for key, value in settings.items():
            lines.append(f"{key} = {_conf_value(value)}")
        _write_private(self.data_dir / "oo.conf", "\n".join(lines) + "\n", self._cluster_user())

        owner = self._cluster_user()
        hba = [
            "# Written by oo.infra.postgres on every `oo infra up`; edits are lost.",
            "# A throwaway development cluster: the server's own OS user may use the",
            "# unix socket (peer), and TCP is accepted from loopback only, without password.",
            f'local   all   "{owner}"   peer',
            "host    all   all   127.0.0.1/32   trust",
            "host    all   all   ::1/128        trust",
        ]
        if self.host not in ("localhost", "127.0.0.1", "::1"):
            network = ipaddress.ip_address(self.host)
            hba.append(f"host    all   all   {network}/{network.max_prefixlen}   trust")
        _write_private(self.data_dir / "pg_hba.conf", "\n".join(hba) + "\n", owner)

    def _start(self, deadline: float) -> None:
        """Start the server detached (pg_ctl puts it in its own session), logging to a file."""
        self.log(f"postgres: starting on {self.address}")
        while True:
            remaining = max(1, int(deadline - time.monotonic()))
            log_offset = self.log_file.stat().st_size if self.log_file.exists() else 0
            result = self._run(
                [self._program("pg_ctl"), "start", "-D", str(self.data_dir),
                 "-l", str(self.log_file), "-w", "-t", str(remaining)],
                timeout=remaining + 10,
            )
            if result.returncode == 0:
                return
            # After a crash (kill -9, OOM) the old server's processes take a
            # moment to exit and still hold the lock file and shared memory;
            # that clears by itself, so try again while time remains.
            if _left_behind(self.log_file, log_offset) and time.monotonic() + 1 < deadline:
                self.log("postgres: the previous server's processes are still exiting; retrying")
                time.sleep(1)
                continue
            raise InfraError(
                f"PostgreSQL did not start on {self.address} "
                f"({_one_line(result.stderr or result.stdout)}); log {self.log_file}:\n"
                f"{tail(self.log_file)}"
            )

    def _wait_ready(self, deadline: float) -> None:
        """Wait until the server accepts TCP connections on the DSN's host and port."""
        pg_isready = self._program("pg_isready")

        def ready() -> bool:
            result = subprocess.run(
                # As a role that always exists, so the probe leaves no FATAL in the log.
                [str(pg_isready), "-q", "-h", self.host, "-p", str(self.port), "-t", "2",
                 "-U", self._cluster_user(), "-d", "postgres"],
                stdin=subprocess.DEVNULL, capture_output=True, env=_clean_env(), timeout=10,
                check=False,
            )
            return result.returncode == 0

        try:
            wait_until(ready, timeout=max(1.0, deadline - time.monotonic()),
                       what=f"PostgreSQL to accept connections on {self.address}")
        except InfraError as err:
            raise InfraError(f"{err}; log {self.log_file}:\n{tail(self.log_file)}") from None

    def _ensure_role_and_database(self) -> None:
        """Create the DSN's role (LOGIN, CREATEDB for tests' scratch databases) and database."""
        # psql variables (:'name') quote the values, and format(%I) quotes the
        # identifiers, so any role or database name is safe. CREATE DATABASE
        # cannot run in a transaction block; \gexec runs each statement alone.
        script = r"""
\set ON_ERROR_STOP on
SELECT 'role ' || count(*) FROM pg_roles WHERE rolname = :'role';
SELECT 'database ' || count(*) FROM pg_database WHERE datname = :'db';
SELECT format('CREATE ROLE %I LOGIN CREATEDB', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = :'role') \gexec
SELECT format('ALTER ROLE %I LOGIN CREATEDB', :'role')
 FROM pg_roles WHERE rolname = :'role' AND NOT (rolcanlogin AND rolcreatedb) \gexec
SELECT format('CREATE DATABASE %I OWNER %I', :'db', :'role')
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = :'db') \gexec
"""
        result = self._run(
            [self._program("psql"), "-X", "-q", "-A", "-t", "-h", str(self.socket_dir),
             "-p", str(self.port), "-U", self._cluster_user(), "-d", "postgres",
             "-v", f"role={self.user}", "-v", f"db={self.database}", "-f", "-"],
            input=script,
            timeout=60,
        )
        if result.returncode != 0:
            raise InfraError(
                f"could not create role {self.user!r} / database {self.database!r}: "
                f"{_one_line(result.stderr)}"
            )
        counts = dict(line.rsplit(" ", 1) for line in result.stdout.split("\n") if " " in line)
        if counts.get("role") == "0":
            self.log(f"postgres: created role {self.user!r}")
        if counts.get("database") == "0":
            self.log(f"postgres: created database {self.database!r} owned by {self.user!r}")

    # --- programs and users ------------------------------------------------

    def _program(self, name: str) -> Path:
        if self._bindir is None:
            self._bindir = find_bindir()
        return self._bindir / name

    def _major_version(self) -> int:
        """The major version of the installed server programs (e.g. 15)."""
        if self._major is not None:
            return self._major
        result = subprocess.run([str(self._program("postgres")), "--version"],
                                check=False, capture_output=True, text=True, env=_clean_env(), timeout=30)
        match = re.search(r"\(PostgreSQL\)\s+(\d+)", result.stdout)
        if result.returncode != 0 or not match:
            raise InfraError(f"cannot tell the version of {self._program('postgres')}: "
                             f"{_one_line(result.stderr or result.stdout)}")
        self._major = int(match.group(1))
        return self._major

    def _cluster_user(self) -> str:
        """The OS user that owns the data folder and runs the server."""
        if self._os_user is None:
            self._os_user = ensure_system_user(self.log) if os.geteuid() == 0 \
                else pwd.getpwuid(os.geteuid()).pw_name
        return self._os_user

    def _run(self, argv: Sequence[str | Path], *, timeout: float,
             input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run a PostgreSQL program as the cluster's user, from a folder it may enter."""
        command = [str(arg) for arg in argv]
        if os.geteuid() == 0:
            runuser = shutil.which("runuser")
            if runuser is None:
                raise InfraError("runuser is missing; install it with `apt-get install util-linux`")
            command = [runuser, "-u", self._cluster_user(), "--", *command]
        try:
            return subprocess.run(
                command, check=False, input=input, stdin=None if input is not None else subprocess.DEVNULL,
                capture_output=True, text=True, env=_clean_env(), cwd=self.root, timeout=timeout,
            )
        except subprocess.TimeoutExpired:
            raise InfraError(f"{Path(str(argv[0])).name} did not finish within {timeout:.0f}s; "
                             f"log {self.log_file}:\n{tail(self.log_file)}") from None

    def _check_major_supported(self) -> None:
        major = self._major_version()
        if major < MIN_MAJOR:
            raise InfraError(f"PostgreSQL {major} in {self._bindir} is too old; oO needs "
                             f"{MIN_MAJOR} or newer: {INSTALL_HINT}")

    @contextmanager
    def _lock(self, timeout: float) -> Iterator[None]:
        """Serialize `up`/`down` of one state folder (e.g. parallel test processes)."""
        with open(self.root / "up.lock", "a") as handle:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise InfraError(f"another `oo infra up/down` holds {self.root}/up.lock "
                                         f"for more than {timeout:.0f}s") from None
                    time.sleep(0.1)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


# --- helpers -------------------------------------------------------------------


def find_bindir() -> Path:
    """The folder of the PostgreSQL server programs.

    `pg_config --bindir` first; on Debian it may name a client-only version
    (libpq-dev's), so a folder without the server programs is skipped and the
    highest /usr/lib/postgresql/*/bin is used instead.
    """
    candidates: list[Path] = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        try:
            out = subprocess.run([pg_config, "--bindir"], check=False, capture_output=True, text=True,
                                 timeout=30, env=_clean_env())
            if out.returncode == 0 and out.stdout.strip():
                candidates.append(Path(out.stdout.strip()))
        except (OSError, subprocess.TimeoutExpired):
            pass
    versions = []
    for path in Path("/usr/lib/postgresql").glob("*/bin"):
        try:
            versions.append((float(path.parent.name), path))
        except ValueError:
            continue
    candidates.extend(path for _, path in sorted(versions, reverse=True))
    for folder in candidates:
        if all((folder / program).is_file() for program in REQUIRED_PROGRAMS):
            return folder
    raise InfraError(f"PostgreSQL server programs (initdb, pg_ctl, postgres) not found; "
                     f"{INSTALL_HINT}")


def ensure_system_user(log: Log) -> str:
    """The unprivileged user the server runs as when we are root; created if needed."""
    for name in SYSTEM_USERS:
        try:
            pwd.getpwnam(name)
            return name
        except KeyError:
            continue
    name = SYSTEM_USERS[-1]
    useradd = shutil.which("useradd")
    if useradd is None:
        raise InfraError(f"no `postgres` user and no useradd to create {name!r}; "
                         f"{INSTALL_HINT}")
    log(f"postgres: creating system user {name!r} to run PostgreSQL (it refuses to run as root)")
    result = subprocess.run(
        [useradd, "--system", "--user-group", "--no-create-home", "--home-dir", "/nonexistent",
         "--shell", "/usr/sbin/nologin", "--comment", "oO local PostgreSQL", name],
        check=False, capture_output=True, text=True, timeout=60,
    )
    if result.returncode != 0:
        raise InfraError(f"useradd {name} failed: {_one_line(result.stderr)}")
    return name


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _port_in_use(host: str, port: int) -> bool:
    return port_open("127.0.0.1" if host == "localhost" else host, port)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except PermissionError:
        return False


def _left_behind(log_file: Path, offset: int) -> bool:
    """Whether the log, from `offset` on, says a crashed server's processes still linger."""
    try:
        with log_file.open("rb") as handle:
            handle.seek(offset)
            text = handle.read().decode(errors="replace")
    except OSError:
        return False
    return ('lock file "postmaster.pid" already exists' in text
            or "pre-existing shared memory block" in text)


def _make_traversable(folder: Path, owner: pwd.struct_passwd, log: Log) -> None:
    """Give `owner` search (x) permission on `folder` and its ancestors where missing.

    Only search permission is added, never read: the server's user must reach
    its data folder, not list what else is there.
    """
    groups = set(os.getgrouplist(owner.pw_name, owner.pw_gid))
    for path in [folder, *folder.parents]:
        info = path.stat()
        if info.st_uid == owner.pw_uid:
            ok = bool(info.st_mode & stat.S_IXUSR)
        elif info.st_gid in groups:
            ok = bool(info.st_mode & stat.S_IXGRP)
        else:
            ok = bool(info.st_mode & stat.S_IXOTH)
        if not ok:
            log(f"postgres: allowing user {owner.pw_name!r} to traverse {path} (chmod o+x)")
            os.chmod(path, stat.S_IMODE(info.st_mode) | stat.S_IXOTH)


def _chown_tree_if_needed(root: Path, uid: int, gid: int) -> None:
    """Hand `root` to the server's user; walk the tree only if its top has another owner."""
    tops = [root, root / "data"]
    if all(not p.exists() or p.stat().st_uid == uid for p in tops):
        return
    for dirpath, dirnames, filenames in os.walk(root):
        os.lchown(dirpath, uid, gid)
        for name in dirnames + filenames:
            os.lchown(os.path.join(dirpath, name), uid, gid)


def _write_private(path: Path, text: str, owner: str) -> None:
    """Write a config file the server's user owns and only it can read."""
    path.write_text(text)
    os.chmod(path, 0o600)
    if os.geteuid() == 0:
        entry = pwd.getpwnam(owner)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _conf_value(value: object) -> str:
    if isinstance(value, int):
        return str(value)
    text = str(value)
    if text in ("on", "off"):
        return text
    return "'" + text.replace("'", "''") + "'"


def _clean_env() -> dict[str, str]:
    """The environment without PG* variables, so a user's PGHOST etc. never redirect us."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    # Messages in English and no dependence on a locale that may not be generated.
    env["LC_ALL"] = "C"
    env.pop("LANGUAGE", None)
    return env


def _one_line(text: str | None) -> str:
    lines = [line.strip() for line in (text or "").splitlines() if line.strip()]
    return " / ".join(lines[-3:]) if lines else "no output"
