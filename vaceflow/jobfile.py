"""A job file from someone else: one request body or a list of them, in YAML or JSON.

It is bounded before anything in it is believed: at most `job_file_bytes` bytes and
`job_file_bodies` bodies, and YAML that expands to at most `NODES_PER_BODY` nodes a
body, aliases included. The nodes are counted on the composed graph, where an alias is
one shared node, before any Python object is built: an alias bomb costs what its text
costs. Loading is yaml's SafeLoader (no Python objects, as `yaml.safe_load`).

Media paths relative to the file are read from its intake (a folder or an s3://
prefix); then every reference of every body passes the trust policy, so a file runs
whole or not at all.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import urlsplit

import yaml
from pydantic import ValidationError

from vaceflow.errors import InputNotAllowed, JobInvalid, describe_validation_error
from vaceflow.jobs import Job, parse_job
from vaceflow.limits import Role
from vaceflow.trust import JOB_FILE_BODIES, JOB_FILE_BYTES, TrustPolicy

__all__ = ["NODES_PER_BODY", "parse_job_file"]

NODES_PER_BODY = 1000
"""YAML nodes one body may expand to: a body with every input and parameter has ~50."""
_MEDIA_FIELDS = frozenset(role.api_field for role in Role)


def parse_job_file(name: str, data: bytes, base: str, policy: TrustPolicy) -> list[Job]:
    """The jobs of one file. JobInvalid naming the file (and body) when one is invalid;
    InputNotAllowed when the file is too big or a reference breaks `policy`.

    Relative media paths are taken from `base` (a folder or an s3:// prefix).
    """
    if len(data) > policy.job_file_bytes:
        raise _refused(
            name,
            f"larger than {policy.job_file_bytes} bytes",
            rule=f"job files at most {policy.job_file_bytes} bytes",
            allow=f"raise {JOB_FILE_BYTES}",
        )
    loaded = _load(name, data, budget=policy.job_file_bodies * NODES_PER_BODY)
    bodies = loaded if isinstance(loaded, list) else [loaded]
    if not bodies or not all(isinstance(b, dict) for b in bodies):
        raise JobInvalid(f"{name}: expected a request body (a mapping) or a list of them")
    if len(bodies) > policy.job_file_bodies:
        raise _refused(
            name,
            f"{len(bodies)} bodies",
            rule=f"at most {policy.job_file_bodies} bodies in a job file",
            allow=f"split the file, or raise {JOB_FILE_BODIES}",
        )
    jobs: list[tuple[str, Job]] = []
    for index, body in enumerate(bodies):
        where = f"{name}" if len(bodies) == 1 else f"{name} body {index}"
        try:
            jobs.append((where, parse_job(_resolve_media(body, base))))
        except ValidationError as exc:
            raise JobInvalid(f"{where}: {describe_validation_error(exc)}") from exc
    for where, job in jobs:
        for role, refs in job.input.media().items():
            for i, ref in enumerate(refs):
                nth = f"[{i}]" if len(refs) > 1 else ""
                policy.check(ref, name=f"{where} input.{role.api_field}{nth}")
    return [job for _, job in jobs]


def _refused(name: str, why: str, *, rule: str, allow: str) -> InputNotAllowed:
    return InputNotAllowed(f"{name}: {why}", input_name=name, rule=rule, allow=allow)


class _TooBig(Exception):
    pass


class _BoundedLoader(yaml.SafeLoader):
    """SafeLoader that counts each document's expanded nodes before building it."""

    def __init__(self, stream: bytes, budget: int) -> None:
        super().__init__(stream)
        self.budget = budget

    def compose_document(self) -> yaml.Node | None:
        node = super().compose_document()
        if node is not None:
            _expanded_size(node, self.budget)
        return node


def _expanded_size(root: yaml.Node, budget: int) -> int:
    """The nodes `root` expands to, aliases counted each time they are used; _TooBig
    past `budget` or on an alias that contains itself. Each distinct node is visited
    once (sizes are remembered), so the count costs the graph, not its expansion."""
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise _TooBig("an alias that contains itself")
        open_nodes.add(key)
        children: list[yaml.Node] = []
        if isinstance(node, yaml.SequenceNode):
            children = list(node.value)
        elif isinstance(node, yaml.MappingNode):
            children = [part for pair in node.value for part in pair]
        total = 1
        for child in children:
            total += size(child)
            if total > budget:
                raise _TooBig(f"more than {budget} nodes once its aliases are expanded")
        open_nodes.discard(key)
        sizes[key] = total
        return total

    return size(root)


def _load(name: str, data: bytes, *, budget: int) -> Any:
    loader = _BoundedLoader(data, budget)
    try:
        return loader.get_single_data()  # JSON job files are YAML too
    except _TooBig as exc:
        raise _refused(
            name,
            f"YAML with {exc}",
            rule=f"a job file expands to at most {NODES_PER_BODY} YAML nodes a body",
            allow=f"write the bodies out without aliases, or raise {JOB_FILE_BODIES}",
        ) from None
    except RecursionError:
        raise _refused(
            name,
            "YAML nested too deep",
            rule="job files nest a few levels deep",
            allow="write the bodies out flat",
        ) from None
    except yaml.YAMLError as exc:
        raise JobInvalid(f"{name}: not YAML or JSON ({exc})") from exc
    finally:
        loader.dispose()


def _resolve_media(body: dict[str, Any], base: str) -> dict[str, Any]:
    given = body.get("input")
    if not isinstance(given, dict):
        return body
    resolved = {k: _resolve(v, base) if k in _MEDIA_FIELDS else v for k, v in given.items()}
    return body | {"input": resolved}


def _resolve(ref: Any, base: str) -> Any:
    if isinstance(ref, list):
        return [_resolve(r, base) for r in ref]
    if not isinstance(ref, str) or not ref or urlsplit(ref).scheme or os.path.isabs(ref):
        return ref
    return f"{base.rstrip('/')}/{ref}"
