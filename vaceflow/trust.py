"""Where a job's inputs may come from when the job comes from someone else.

Whom vaceflow trusts:

- The person running a process (the CLI, a flow called from Python) chose its inputs:
  they are read as given (`TrustPolicy.open()`).
- Everyone else (a job file dropped into an intake, a run a deployment starts: a
  worker, `vaceflow serve`, the Prefect UI's forms) may make a worker read only what
  its owner's settings allow (`TrustPolicy.from_settings`). Deny by default.

What an enforced policy allows, one check per kind of reference:

- a local path: inside an allowed root (VACEFLOW_ALLOWED_ROOTS, and an intake's own
  folder), judged on the path with every symlink and `..` resolved, and again on the
  file actually opened. The data folder (its env file holds keys; the catalog; the
  stack's state) stays shut even when a root contains it: only a root inside it (the
  default inbox) opens that root's own files.
- an http(s) URL: a host whose every address is public, unless VACEFLOW_ALLOWED_HOSTS
  names it or its network. Judged on the addresses the connection uses: the host is
  resolved here, every address checked, and the connection made to a checked address
  (a name re-pointed between check and connect gains nothing), on every redirect hop.
- an s3:// URI: a bucket and prefix in VACEFLOW_ALLOWED_S3, the staging bucket's
  inputs prefix, or an S3 intake's own prefix.
- oss://: never; only vaceflow's own staging makes those.

Every refusal is an `InputNotAllowed` naming the input, the rule it broke and the one
setting that would allow it.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit

import httpcore
import httpx
from pydantic import BaseModel, ConfigDict

from vaceflow.errors import InputNotAllowed
from vaceflow.redact import redact_url

if TYPE_CHECKING:
    from vaceflow.settings import Settings

__all__ = [
    "MAX_JOB_FILE_BODIES",
    "MAX_JOB_FILE_BYTES",
    "ROOTS",
    "TRUST_SETTINGS",
    "IPAddress",
    "TrustPolicy",
    "address_kind",
    "is_local_host",
]

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

ROOTS, HOSTS, S3 = "VACEFLOW_ALLOWED_ROOTS", "VACEFLOW_ALLOWED_HOSTS", "VACEFLOW_ALLOWED_S3"
JOB_FILE_BYTES, JOB_FILE_BODIES = "VACEFLOW_JOB_FILE_MAX_BYTES", "VACEFLOW_JOB_FILE_MAX_BODIES"
TRUST_SETTINGS = (ROOTS, HOSTS, S3, JOB_FILE_BYTES, JOB_FILE_BODIES)
"""The variables saying what other people's jobs may read: a stack hands them to its workers."""
MAX_JOB_FILE_BYTES, MAX_JOB_FILE_BODIES = 1 << 20, 100
"""A job file's bounds unless the settings say otherwise."""

_LOCAL_SUFFIXES = (".localhost", ".local", ".internal", ".lan", ".home.arpa")


# --- addresses ---------------------------------------------------------------------------


def address_kind(ip: IPAddress) -> str | None:
    """Why `ip` is not a public address ("loopback", "private", ...); None when it is."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped  # ::ffff:127.0.0.1 is 127.0.0.1
    checks = (
        ("loopback", ip.is_loopback),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("unspecified", ip.is_unspecified),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("non-public", not ip.is_global),
    )
    return next((kind for kind, hit in checks if hit), None)


def _ip(host: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def is_local_host(host: str) -> bool:
    """Loopback, private, link-local or otherwise non-public address, or a name that
    only resolves inside a network (`localhost`, `minio`, `*.local`, `*.internal`).
    Judged on the name alone, without resolving it."""
    host = host.strip("[]").lower().rstrip(".")
    if not host:
        return True
    ip = _ip(host)
    if ip is None:
        return host == "localhost" or "." not in host or host.endswith(_LOCAL_SUFFIXES)
    return address_kind(ip) is not None


def _resolve(host: str, port: int) -> list[IPAddress]:
    """Every address `host` resolves to, in the resolver's order; [] when none."""
    literal = _ip(host)
    if literal is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        return []
    found = [_ip(str(info[4][0])) for info in infos]
    return list(dict.fromkeys(ip for ip in found if ip is not None))


def _norm(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _under(path: Path, root: Path) -> bool:
    return path == root or root in path.parents


def _real(path: str | Path) -> Path:
    """`path` with `~`, every symlink and `..` resolved (a missing file is fine)."""
    return Path(os.path.realpath(Path(path).expanduser()))


def _shown(url: str) -> str:
    return redact_url(url)


# --- the policy --------------------------------------------------------------------------


class TrustPolicy(BaseModel):
    """What one run may read: `enforced` False reads anything (the person running the
    process chose its inputs); else only what the lists allow."""

    model_config = ConfigDict(frozen=True)

    enforced: bool = True
    roots: tuple[Path, ...] = ()
    """Folders (or single files) whose contents may be read; resolved."""
    closed: tuple[Path, ...] = ()
    """vaceflow's own data: never read through a root that contains it."""
    hosts: tuple[str, ...] = ()
    """Names (`media.lan`, `*.corp.example`), addresses or networks trusted over http(s)."""
    s3: tuple[str, ...] = ()
    """`bucket` or `bucket/prefix` that s3:// inputs may come from."""
    job_file_bytes: int = MAX_JOB_FILE_BYTES
    job_file_bodies: int = MAX_JOB_FILE_BODIES

    @classmethod
    def open(cls) -> TrustPolicy:
        return cls(enforced=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> TrustPolicy:
        """The owner's policy for other people's jobs: their allowed roots, hosts and
        buckets, the staging bucket's inputs prefix, and the data folder kept shut."""
        from vaceflow.storage.s3 import inputs_prefix

        closed = [settings.data_dir]
        catalog = settings.catalog_url or ""
        if catalog.startswith("sqlite:///"):  # a catalog kept outside the data folder
            closed.append(Path(catalog.removeprefix("sqlite:///").split("?")[0]))
        s3 = [_s3_entry(entry) for entry in settings.allowed_s3]
        if settings.s3_bucket:
            s3.insert(0, f"{settings.s3_bucket}/{inputs_prefix(settings.s3_prefix)}")
        return cls(
            roots=tuple(_real(root) for root in settings.allowed_roots),
            closed=tuple(_real(path) for path in closed),
            hosts=tuple(_norm(h) for h in settings.allowed_hosts),
            s3=tuple(s3),
            job_file_bytes=settings.job_file_max_bytes,
            job_file_bodies=settings.job_file_max_bodies,
        )

    def allowing(self, *places: str | Path) -> TrustPolicy:
        """This policy, also allowing `places`: folders, files or s3:// prefixes (an
        intake's own root; a file a flow made itself)."""
        if not self.enforced or not places:
            return self
        s3 = tuple(_s3_entry(str(p)) for p in places if str(p).startswith("s3://"))
        roots = tuple(_real(p) for p in places if not str(p).startswith("s3://"))
        return self.model_copy(update={"roots": self.roots + roots, "s3": self.s3 + s3})

    def describe(self) -> dict[str, str]:
        """What this policy lets a job read, one line per kind (doctor, deployments)."""
        if not self.enforced:
            return {"inputs": "anything the person running the process gives"}
        return {
            "paths": ", ".join(map(str, self.roots)) or f"none ({ROOTS})",
            "hosts": "public hosts" + "".join(f", {h}" for h in self.hosts),
            "s3": ", ".join(f"s3://{e}" for e in self.s3) or f"none ({S3})",
            "job files": f"at most {self.job_file_bytes} bytes and {self.job_file_bodies} bodies",
            "never": "oss:// URIs; vaceflow's data folder " + ", ".join(map(str, self.closed)),
        }

    # --- one check per kind of reference ------------------------------------------------

    def check(self, ref: str, *, name: str) -> None:
        """Refuse `ref` (InputNotAllowed) unless this policy lets the run read it; judged
        before anything is fetched (downloads and opened files are judged again)."""
        if not self.enforced:
            return
        parts = urlsplit(ref)
        scheme = parts.scheme.lower()
        if scheme in ("http", "https"):
            self.check_url(ref, name=name)
        elif scheme == "s3":
            self.check_s3(ref, name=name)
        elif scheme == "oss":
            raise InputNotAllowed(
                f"{name}: {_shown(ref)}: oss:// references are made by vaceflow's own staging",
                input_name=name,
                rule="oss:// only as made by vaceflow's staging",
                allow="give the file itself (a path, http(s) or s3:// URI)",
            )
        elif scheme == "file":
            self.check_path(unquote(parts.path), name=name)
        elif scheme and len(scheme) > 1:  # (one letter: a Windows drive)
            raise InputNotAllowed(
                f"{name}: {_shown(ref)}: {scheme}:// is not an input vaceflow reads",
                input_name=name,
                rule="inputs are paths, http(s) URLs or s3:// URIs",
                allow="give a path, an http(s) URL or an s3:// URI",
            )
        else:
            self.check_path(ref, name=name)

    def check_path(self, path: str | Path, *, name: str) -> Path:
        """`path` resolved (symlinks, `..`, `~`); InputNotAllowed when outside the roots
        or inside vaceflow's data folder."""
        real = _real(path)
        if not self.enforced:
            return real
        shown = f"{path}" if str(path) == str(real) else f"{path} (that is {real})"
        roots = [root for root in self.roots if _under(real, root)]
        if not roots:
            allowed = ", ".join(map(str, self.roots)) or "none"
            raise InputNotAllowed(
                f"{name}: {shown} is outside the folders jobs may read ({allowed})",
                input_name=name,
                rule=f"local files only inside the allowed folders ({allowed})",
                allow=f"add {real.parent} to {ROOTS} (comma-separated)",
            )
        for closed in self.closed:
            if _under(real, closed) and not any(
                root != closed and _under(root, closed) for root in roots
            ):
                raise InputNotAllowed(
                    f"{name}: {shown} is in vaceflow's data folder {closed}, which holds "
                    "its keys, catalog and stack state",
                    input_name=name,
                    rule="vaceflow's data folder is never read for a job",
                    allow=f"copy the file to a folder in {ROOTS} outside {closed}",
                )
        return real

    def check_opened(self, fd: int, path: Path, *, name: str) -> None:
        """Check the file open as `fd` (not the name it was opened by: a folder on the
        way may have been swapped for a symlink since `check_path`)."""
        if not self.enforced:
            return
        try:
            opened = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # no /proc: the opened file must still be the checked one
            here, there = os.fstat(fd), os.stat(path, follow_symlinks=False)
            if (here.st_dev, here.st_ino) != (there.st_dev, there.st_ino):
                opened = f"{path} (replaced while opened)"
            else:
                opened = str(path)
        if opened != str(path):
            self.check_path(opened, name=name)

    def check_url(self, url: str, *, name: str, via: str | None = None) -> None:
        """An http(s) URL whose host (every address it resolves to) this run may reach;
        `via`: the URL that redirected here."""
        if not self.enforced:
            return
        parts = urlsplit(url)
        shown = _shown(url) if via is None else f"{_shown(via)} redirects to {_shown(url)}"
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise InputNotAllowed(
                f"{name}: {shown}: not an http(s) URL with a host",
                input_name=name,
                rule="inputs are paths, http(s) URLs or s3:// URIs",
                allow="give an http(s) URL",
            )
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
        self.addresses(parts.hostname, port, name=name, shown=shown)

    def addresses(self, host: str, port: int, *, name: str, shown: str | None = None) -> list[str]:
        """The addresses of `host` a connection may use: all of them checked (one
        non-public address refuses the host, unless the host or network is allowed)."""
        shown = shown or host
        found = _resolve(host, port)
        if not found:
            raise InputNotAllowed(
                f"{name}: {shown}: {host} does not resolve",
                input_name=name,
                rule="http(s) hosts must resolve to public addresses",
                allow=f"fix the host name (an internal one goes in {HOSTS})",
            )
        if self.enforced and not self._host_allowed(host):
            for ip in found:
                kind = address_kind(ip)
                if kind is not None and not self._address_allowed(ip):
                    where = host if _ip(host) is not None else f"{host} resolves to {ip}"
                    raise InputNotAllowed(
                        f"{name}: {shown}: {where}, a {kind} address",
                        input_name=name,
                        rule="http(s) inputs only from public hosts or "
                        f"{HOSTS} ({', '.join(self.hosts) or 'none'})",
                        allow=f"add {_norm(host)} to {HOSTS} if it is a media host you trust",
                    )
        return [str(ip) for ip in found]

    def check_s3(self, uri: str, *, name: str) -> None:
        """An s3:// URI under an allowed bucket/prefix; keys with `.` or `..` segments
        are refused (a server or proxy may normalise them out of the prefix)."""
        if not self.enforced:
            return
        parts = urlsplit(uri)
        bucket, key = parts.netloc, unquote(parts.path).lstrip("/")
        allowed = ", ".join(f"s3://{e}/" for e in self.s3) or "none"
        rule = f"s3:// inputs only under the allowed prefixes ({allowed})"
        if any(segment in (".", "..") for segment in key.split("/")):
            raise InputNotAllowed(
                f"{name}: {uri}: a key with '.' or '..' segments",
                input_name=name,
                rule=rule,
                allow="name the object by its plain key",
            )
        for entry in self.s3:
            entry_bucket, _, prefix = entry.partition("/")
            if bucket == entry_bucket and (not prefix or key.startswith(prefix + "/")):
                return
        folder = key.rpartition("/")[0]
        raise InputNotAllowed(
            f"{name}: {uri} is outside the S3 prefixes jobs may read ({allowed})",
            input_name=name,
            rule=rule,
            allow=f"add s3://{bucket}/{folder + '/' if folder else ''} to {S3}",
        )

    def _host_allowed(self, host: str) -> bool:
        host = _norm(host)
        return any(
            host == entry or (entry.startswith("*.") and host.endswith(entry[1:]))
            for entry in self.hosts
        )

    def _address_allowed(self, ip: IPAddress) -> bool:
        for entry in self.hosts:
            try:
                if ip in ipaddress.ip_network(entry, strict=False):
                    return True
            except ValueError:  # a name, not a network
                continue
        return False

    # --- connections --------------------------------------------------------------------

    def http_client(self, *, name: str, timeout: float) -> httpx.Client:
        """An HTTP client for one input. Enforced: it connects only to checked addresses,
        and ignores proxy settings (a proxy would connect for us, unchecked). It never
        follows redirects: the caller checks each hop (`check_url`) and follows it."""
        if not self.enforced:
            return httpx.Client(timeout=timeout)
        transport = _CheckedTransport(_CheckedBackend(self, name))
        return httpx.Client(timeout=timeout, transport=transport, trust_env=False)


def _s3_entry(value: str) -> str:
    """`s3://bucket/prefix/` (or `bucket/prefix`) as `bucket/prefix`."""
    return value.strip().removeprefix("s3://").strip("/")


class _CheckedBackend(httpcore.SyncBackend):
    """Resolves the host itself, checks every address, and connects to a checked one;
    TLS still verifies the certificate against the host name (httpcore sends it)."""

    def __init__(self, policy: TrustPolicy, name: str) -> None:
        self.policy = policy
        self.name = name

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        error: Exception | None = None
        for address in self.policy.addresses(host, port, name=self.name):
            try:
                return super().connect_tcp(address, port, timeout, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                error = exc  # the next address, as a resolver-ordered connect would
        assert error is not None  # addresses() returns at least one or raises
        raise error


class _CheckedTransport(httpx.HTTPTransport):
    """httpx's transport on a checked network backend (httpx takes none as an option:
    its connection pool is made again, as httpx makes it, with ours)."""

    def __init__(self, backend: _CheckedBackend) -> None:
        super().__init__(trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=httpx.create_ssl_context(trust_env=False),
            network_backend=backend,
        )
