"""Prepare a whole job before any upload or spend: fetch, conform, check, validate.

Order matters: the main video first (masks are matched to what it became, and
`mask_frame_id` is checked against it), then the masks, then the two clips as a pair
(they share one time budget), then the images. The job is validated twice: with the
user's references before any work (a parameter error costs nothing), and with the
conformed files' file:// URIs, which staging later swaps for public URLs. Every
reference passes the trust policy before the first one is fetched.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict

from vaceflow.errors import InputRefused
from vaceflow.jobs import Job
from vaceflow.limits import Role, max_mask_frame_id
from vaceflow.media.conform import Conformer
from vaceflow.media.facts import gather_facts
from vaceflow.media.plan import VideoTarget, Window, clip_windows, output_fps
from vaceflow.media.probe import probe
from vaceflow.media.report import ConformReport
from vaceflow.media.sources import Sources, display_ref
from vaceflow.media.spec import JobSpec, build_job
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
    """A job ready to stage: conformed files by role, their reports, the validated job."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    job: Job
    files: dict[Role, list[Path]]
    reports: list[ConformReport]

    @property
    def warnings(self) -> list[str]:
        return [w for r in self.reports for w in r.warnings]


def prepare(
    spec: JobSpec,
    *,
    settings: Settings | None = None,
    sources: Sources | None = None,
    conformer: Conformer | None = None,
    policy: TrustPolicy | None = None,
) -> PreparedJob:
    """Conform every input of `spec` and validate the job; nothing is uploaded.

    `policy` says what the inputs may be (default: anything, as for the person running
    this process; flows pass their run's); `sources`, when given, carries its own.
    Raises JobInvalid (parameters), InputRefused (an input that cannot be conformed,
    with the rule; InputNotAllowed: one the policy forbids), MediaError (an input that
    cannot be fetched or processed).
    """
    build_job(spec)
    settings = settings or Settings.load()
    sources = sources or Sources.from_settings(settings, policy)
    for role, refs in spec.inputs.items():
        for i, ref in enumerate(refs):
            sources.policy.check(ref, name=_name(role, i, refs))
    conformer = conformer or Conformer(settings.data_dir / "conformed")
    local = {
        role: [sources.fetch(ref, name=_name(role, i, refs)) for i, ref in enumerate(refs)]
        for role, refs in spec.inputs.items()
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
                source=display_ref(spec.inputs[role][i]),
                window=windows.get(role),
                target=target if role in (Role.MASK_IMAGE, Role.MASK_VIDEO) else None,
            )
            reports.setdefault(role, []).append(report)
        if role is Role.VIDEO and role in reports:
            target = VideoTarget.of(probe(reports[role][0].output))
            _check_mask_frame_id(spec, target)
    files = {role: [Path(r.output) for r in rs] for role, rs in reports.items()}
    job = build_job(spec, {role: [p.as_uri() for p in paths] for role, paths in files.items()})
    return PreparedJob(
        job=job, files=files, reports=[r for role in _ORDER for r in reports.get(role, [])]
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


def _check_mask_frame_id(spec: JobSpec, target: VideoTarget) -> None:
    frame_id = spec.input_options.get("mask_frame_id")
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
