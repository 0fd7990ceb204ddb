"""Conform one input to its role: probe, plan, run ffmpeg, check the result, cache it.

Conformed files are cached under the data folder by (source sha256, role, the context
that changes the result: the clip window, the video a mask must match), so a re-run
does no ffmpeg work twice. A cache hit also requires the file to still be there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path

from vaceflow.errors import MediaError
from vaceflow.identity import sha256_file
from vaceflow.limits import Role
from vaceflow.media.execute import execute
from vaceflow.media.facts import gather_facts
from vaceflow.media.plan import VideoTarget, Window, plan_for, violations
from vaceflow.media.probe import probe
from vaceflow.media.report import ConformReport, MediaSummary

__all__ = ["Conformer"]

log = logging.getLogger("vaceflow.media")

_CACHE_VERSION = 1
"""Bump when planning or encoding changes what a conformed file looks like."""
_ATTEMPTS = 3


class Conformer:
    """Conforms inputs into `cache_dir` (normally `<data dir>/conformed`)."""

    def __init__(self, cache_dir: Path) -> None:
        self.cache_dir = cache_dir

    def conform(
        self,
        path: Path,
        role: Role,
        *,
        name: str,
        source: str,
        window: Window | None = None,
        target: VideoTarget | None = None,
    ) -> ConformReport:
        """The conformed file of `path` as `role`, from the cache when it is there.

        Raises InputRefused when the input breaks a rule it cannot be conformed to,
        MediaError when ffmpeg fails or the result still breaks the rule.
        """
        source_sha = sha256_file(path)
        key = _cache_key(source_sha, role, window, target)
        cached = self._lookup(key, name=name, source=source)
        if cached is not None:
            log.info("%s", cached.line())
            return cached

        facts = gather_facts(path, name=name, mask=role is Role.MASK_IMAGE)
        plan = plan_for(role, facts, name=name, window=window, target=target)
        self.cache_dir.mkdir(parents=True, exist_ok=True)
        force: str | None = None
        fit_bytes, scale = False, 1.0
        for attempt in range(1, _ATTEMPTS + 1):
            output = self.cache_dir / f"{key}.{plan.ext}"
            writer = f"{os.getpid()}.{threading.get_ident()}"  # threads of one process too
            partial = self.cache_dir / f"{key}.{writer}.part.{plan.ext}"
            execute(plan, path, partial)
            after = probe(partial)
            problems = violations(after, role, target=target, window=window)
            if not problems:
                break
            partial.unlink(missing_ok=True)
            over = after.size_bytes > role.rule.max_bytes
            if attempt == _ATTEMPTS or plan.mode == "keep" or (plan.mode == "encode" and not over):
                raise MediaError(
                    f"{name}: the conformed file still breaks the rule: {'; '.join(problems)}",
                    input_name=name,
                )
            # A stream copy that did not fit is encoded; an encode over the byte limit
            # is encoded again at a bitrate scaled by how far it overshot.
            if plan.mode == "copy":
                force = f"the stream copy came out with {'; '.join(problems)}"
            if over:
                if fit_bytes or plan.bitrate:
                    scale *= role.rule.max_bytes / after.size_bytes * 0.95
                fit_bytes = True
            plan = plan_for(
                role,
                facts,
                name=name,
                window=window,
                target=target,
                force_encode=force,
                fit_bytes=fit_bytes,
                bitrate_scale=scale,
            )
        os.replace(partial, output)
        final = probe(output)
        report = ConformReport(
            input=name,
            role=role,
            source=source,
            source_sha256=source_sha,
            before=MediaSummary.of(facts.info),
            mode=plan.mode,
            actions=plan.actions,
            after=MediaSummary.of(final),
            output=str(output),
            sha256=sha256_file(output),
            warnings=plan.warnings,
        )
        meta = _report_path(output)  # written whole or not at all: threads share the cache
        part = meta.with_name(f"{meta.name}.{writer}.part")
        part.write_text(report.model_dump_json(indent=2))
        os.replace(part, meta)
        log.info("%s", report.line())
        for warning in report.warnings:
            log.warning("%s", warning)
        return report

    def _lookup(self, key: str, *, name: str, source: str) -> ConformReport | None:
        for meta in self.cache_dir.glob(f"{key}.*.json"):
            try:
                report = ConformReport.model_validate_json(meta.read_text())
            except ValueError:
                continue
            if Path(report.output).is_file():
                return report.model_copy(update={"cached": True, "input": name, "source": source})
        return None


def _cache_key(
    source_sha: str, role: Role, window: Window | None, target: VideoTarget | None
) -> str:
    context = {
        "v": _CACHE_VERSION,
        "source": source_sha,
        "role": role.value,
        "window": window.model_dump() if window else None,
        "target": target.model_dump() if target else None,
    }
    return hashlib.sha256(json.dumps(context, sort_keys=True).encode()).hexdigest()[:32]


def _report_path(output: Path) -> Path:
    return output.with_name(output.name + ".json")
