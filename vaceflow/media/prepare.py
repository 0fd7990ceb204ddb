"""Prepare a whole job before any upload or spend: fetch, conform, check.

Order matters: the main video first (masks are matched to what it became, and
`mask_frame_id` is checked against it), then the masks, then the two clips as a pair
(they share one time budget), then the images. The job was validated when it was made
(a parameter error costs nothing); the prepared job is the same job with the conformed
files' file:// URIs in place of the user's references, which the submit swaps for the
URLs staging made. Every reference passes the trust policy before the first one is
fetched.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel

from vaceflow.errors import InputRefused
from vaceflow.jobs import Job
from vaceflow.limits import Role, max_mask_frame_id
from vaceflow.media.conform import Conformer
from vaceflow.media.facts import gather_facts
from vaceflow.media.plan import VideoTarget, Window, clip_windows, output_fps
from vaceflow.media.probe import probe
from vaceflow.media.report import ConformReport
from vaceflow.media.sources import Sources, display_ref
from vaceflow.settings import Settings
from vaceflow.trust import TrustPolicy

__all__ = ["PreparedJob", "prepare"]

_ORDER = (
    Role.VIDEO,
    Role.MASK_IMAGE,
    Role.MASK_VIDEO,
    Role.FIRST_CLIP,
    Role.LAST_CLIP,
    Role.REF_IMAGE,
    Role.FIRST_FRAME,
    Role.LAST_FRAME,
)


class PreparedJob(BaseModel):
    """A job ready to stage: its inputs the conformed files, with a report on each."""

    job: Job
    reports: list[ConformReport]

    @property
    def files(self) -> dict[Role, list[Path]]:
        """The conformed files by role, in request order."""
        return {
            role: [Path(unquote(urlsplit(uri).path)) for uri in uris]
            for role, uris in self.job.input.media().items()
        }

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.reports for w in r.warnings]


def prepare(
    job: Job,
    *,
    settings: Settings | None = None,
    sources: Sources | None = None,
    conformer: Conformer | None = None,
    policy: TrustPolicy | None = None,
) -> PreparedJob:
    """Conform every input of `job`; nothing is uploaded.

    `policy` says what the inputs may be (default: anything, as for the person running
    this process; flows pass their run's); `sources`, when given, carries its own.
    Raises InputRefused (an input that cannot be conformed, with the rule;
    InputNotAllowed: one the policy forbids), MediaError (an input that cannot be
    fetched or processed).
    """
    settings = settings or Settings.load()
    sources = sources or Sources.from_settings(settings, policy)
    given = job.input.media()
    for role, refs in given.items():
        for i, ref in enumerate(refs):
            sources.policy.check(ref, name=_name(role, i, refs))
    conformer = conformer or Conformer(settings.data_dir / "conformed")
    local = {
        role: [sources.fetch(ref, name=_name(role, i, refs)) for i, ref in enumerate(refs)]
        for role, refs in given.items()
    }
    windows = _clip_windows(local)
    reports: dict[Role, list[ConformReport]] = {}
    target: VideoTarget | None = None
    for role in _ORDER:
        for i, path in enumerate(local.get(role, [])):
            name = _name(role, i, local[role])
            report = conformer.conform(
                path,
                role,
                name=name,
                source=display_ref(given[role][i]),
                window=windows.get(role),
                target=target if role in (Role.MASK_IMAGE, Role.MASK_VIDEO) else None,
            )
            reports.setdefault(role, []).append(report)
        if role is Role.VIDEO and role in reports:
            target = VideoTarget.of(probe(reports[role][0].output))
            _check_mask_frame_id(job, target)
    conformed = {role: [Path(r.output).as_uri() for r in rs] for role, rs in reports.items()}
    return PreparedJob(
        job=job.with_media(conformed),
        reports=[r for role in _ORDER for r in reports.get(role, [])],
    )


def _name(role: Role, index: int, refs: list[str] | list[Path]) -> str:
    return f"{role.value}[{index + 1}]" if len(refs) > 1 else role.value


def _clip_windows(local: dict[Role, list[Path]]) -> dict[Role, Window]:
    """The pair's windows, from the clips' probes (the clips share one budget)."""
    found = {}
    for role in (Role.FIRST_CLIP, Role.LAST_CLIP):
        if local.get(role):
            info = gather_facts(local[role][0], name=role.value).info
            found[role] = (info.duration or 0.0, output_fps(info, role.rule))
    first, last = clip_windows(found.get(Role.FIRST_CLIP), found.get(Role.LAST_CLIP))
    windows = {Role.FIRST_CLIP: first, Role.LAST_CLIP: last}
    return {role: w for role, w in windows.items() if w is not None}


def _check_mask_frame_id(job: Job, target: VideoTarget) -> None:
    frame_id = getattr(job.input, "mask_frame_id", None)
    if frame_id is None:
        return
    top = max_mask_frame_id(target.fps, target.duration)
    if not 1 <= int(frame_id) <= top:
        raise InputRefused(
            f"mask_frame_id {frame_id} is outside the conformed video's frames [1, {top}] "
            f"({target.fps:g} fps x {target.duration:g} s + 1)",
            input_name="mask_frame_id",
            rule="mask_frame_id in [1, fps x duration + 1]",
        )
