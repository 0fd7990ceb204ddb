"""Cost and time before spend: estimates from prepared media, the batch makespan, the
catalog's medians and paid-for jobs, price overrides, and --budget in the dry run."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tests.media import MediaFactory
from vaceflow.catalog import Catalog, default_catalog_url
from vaceflow.cli import app
from vaceflow.errors import BudgetExceeded, ConfigError
from vaceflow.estimate import check_budget, estimate, makespan
from vaceflow.identity import job_identity
from vaceflow.jobs import Function, Job, parse_job
from vaceflow.limits import ACCOUNT, Role
from vaceflow.media.prepare import PreparedJob, prepare
from vaceflow.media.probe import probe
from vaceflow.options import job_from_options
from vaceflow.responses import TaskResponse
from vaceflow.settings import Settings

PRICE_ENV = ("VACEFLOW_PRICE_PER_SECOND", "VACEFLOW_PRICES", "DASHSCOPE_REGION", "VACEFLOW_REGION")


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(tmp_path / "data"))
    for name in (*PRICE_ENV, "VACEFLOW_CATALOG_URL", "VACEFLOW_S3_BUCKET", "DASHSCOPE_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    return Settings()


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 3, 4, 5, 6, 7, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def catalog(tmp_path: Path, clock: Clock) -> Iterator[Catalog]:
    with Catalog(f"sqlite:///{tmp_path / 'ledger.db'}", clock=clock).upgrade() as cat:
        yield cat


def hashes(prepared: PreparedJob) -> dict[Role, list[str]]:
    found: dict[Role, list[str]] = {}
    for report in prepared.reports:
        found.setdefault(report.role, []).append(report.sha256)
    return found


def succeed(
    catalog: Catalog, clock: Clock, job: Job, identity: str, *, seconds: float, video: int = 5
) -> str:
    """Run `job` through the ledger as a worker would: submitted, then SUCCEEDED after
    `seconds`, billed for `video` seconds."""
    job_id = catalog.claim(identity, job).id
    assert catalog.begin_submit(job_id, "worker", 60)
    assert catalog.mark_sending(job_id, "worker", 30)
    catalog.record_submitted(job_id, f"task-{identity[:8]}", "req")
    clock.now += timedelta(seconds=seconds)
    done = TaskResponse.model_validate(
        {
            "request_id": "req-poll",
            "output": {"task_id": f"task-{identity[:8]}", "task_status": "SUCCEEDED"},
            "usage": {"video_duration": video, "video_count": 1},
        }
    )
    catalog.record_status(job_id, done)
    return job_id


def bare(function: str = "image_reference", **extra: Any) -> Job:
    """A job with URLs only (no conformed media to measure)."""
    media = {
        "image_reference": {"ref_images_url": ["https://in.example/a.png"]},
        "video_outpainting": {"video_url": "https://in.example/a.mp4"},
    }[function]
    return parse_job({"input": {"function": function, "prompt": "p", **media}, **extra})


# --- one estimate per function, from conformed media ------------------------------------


def test_each_function_is_estimated_from_its_conformed_media(
    media: MediaFactory, settings: Settings
) -> None:
    image = str(media.image(width=480, height=360))
    options: dict[Function, dict[str, Any]] = {
        Function.IMAGE_REFERENCE: {"prompt": "a cat", "ref_image": [image]},
        Function.VIDEO_REPAINTING: {
            "prompt": "watercolour",
            "video": media.video(width=320, height=240, seconds=3),
            "control_condition": "depth",
        },
        Function.VIDEO_EDIT: {
            "prompt": "a red car",
            "video": media.video(width=320, height=240, seconds=6),
            "mask_image": media.mask_image(width=320, height=240),
            "mask_frame_id": 1,
            "mask_type": "fixed",
        },
        Function.VIDEO_EXTENSION: {"prompt": "keeps running", "first_frame": image},
        Function.VIDEO_OUTPAINTING: {
            "prompt": "wider",
            "video": media.video(width=320, height=240, seconds=2.5),
        },
    }
    prepared = {
        f: prepare(job_from_options(f, given), settings=settings) for f, given in options.items()
    }

    # What the video will last, read from the files the service would get.
    def expected(function: Function) -> int:
        files = prepared[function].files
        if Role.VIDEO not in files:
            return 5
        duration = probe(files[Role.VIDEO][0]).duration
        assert duration is not None
        return math.ceil(round(min(duration, 5.0), 3))

    assert [expected(f) for f in options] == [5, 3, 5, 5, 3], "6 s is cut, 2.5 s bills 3 s"
    for function, job in prepared.items():
        one = estimate([job], settings=settings)
        [item] = one.jobs
        assert item.video_seconds == expected(function)
        assert item.seconds_from == ("conformed video" if function in (
            Function.VIDEO_REPAINTING, Function.VIDEO_EDIT, Function.VIDEO_OUTPAINTING
        ) else "fixed")  # fmt: skip
        assert one.cost == pytest.approx(0.10 * expected(function))
        assert one.currency == "USD"
        assert item.task_seconds == ACCOUNT.typical_task_seconds
        assert item.task_seconds_from == "provider figure"

    batch = estimate(list(prepared.values()), settings=settings)
    assert batch.video_seconds == 21
    assert batch.cost == pytest.approx(2.10)
    # Five 7-minute tasks, two at once: three rounds.
    assert batch.wall_seconds == pytest.approx(3 * 7 * 60, abs=5 / ACCOUNT.submit_per_second)
    assert batch.summary == "5 jobs, 21 s of video, about USD 2.10, about 21 min at 2 at once"
    dumped = json.loads(batch.model_dump_json())
    assert dumped["summary"] == batch.summary
    assert [j["function"] for j in dumped["jobs"]] == [f.value for f in options]


def test_a_bare_job_assumes_five_seconds(settings: Settings) -> None:
    result = estimate([bare("video_outpainting")], settings=settings)
    assert (result.jobs[0].video_seconds, result.jobs[0].seconds_from) == (5, "assumed")
    assert result.jobs[0].identity is None


# --- the batch's wall time --------------------------------------------------------------


@pytest.mark.parametrize(("count", "slots"), [(1, 2), (2, 2), (3, 2), (7, 2), (10, 3), (4, 1)])
def test_makespan_is_rounds_of_the_typical_task(count: int, slots: int) -> None:
    rate = ACCOUNT.submit_per_second
    span = makespan([420.0] * count, concurrency=slots, submit_per_second=rate)
    rounds = math.ceil(count / slots)
    assert rounds * 420 <= span <= rounds * 420 + count / rate


def test_makespan_fills_free_slots_and_respects_the_submit_rate() -> None:
    # One long task holds a slot; the short ones take turns in the other.
    assert makespan([600, 60, 60, 60], concurrency=2, submit_per_second=100) == pytest.approx(600)
    # Plenty of slots: the last of four is submitted 1.5 s in at 2 a second.
    assert makespan([1, 1, 1, 1], concurrency=10, submit_per_second=2) == pytest.approx(2.5)
    assert makespan([], concurrency=2, submit_per_second=2) == 0


def test_concurrency_can_be_overridden(settings: Settings) -> None:
    jobs = [bare(), bare(), bare(), bare()]
    assert estimate(jobs, settings=settings).wall_seconds == pytest.approx(840, abs=2)
    wide = estimate(jobs, settings=settings, concurrency=4)
    assert wide.wall_seconds == pytest.approx(420, abs=2)
    assert wide.summary.endswith("about 7 min at 4 at once")
    with pytest.raises(ConfigError):
        estimate(jobs, settings=settings, concurrency=0)


# --- what the catalog knows -------------------------------------------------------------


def test_medians_and_paid_for_jobs_come_from_the_catalog(
    media: MediaFactory, settings: Settings, catalog: Catalog, clock: Clock
) -> None:
    video = str(media.video(width=320, height=240, seconds=2))
    wider, taller = (
        job_from_options(Function.VIDEO_OUTPAINTING, {"prompt": prompt, "video": video})
        for prompt in ("wider", "taller")
    )
    done = prepare(wider, settings=settings)
    fresh = prepare(taller, settings=settings)
    cat = {"prompt": "a cat", "ref_image": [str(media.image(width=400, height=400))]}
    image = prepare(job_from_options(Function.IMAGE_REFERENCE, cat), settings=settings)
    # Recorded outpaintings took 100, 300 and 200 s: the median is 200 s.
    done_id = succeed(catalog, clock, done.job, job_identity(done.job, hashes(done)), seconds=100)
    for n, seconds in enumerate((300, 200)):
        job = bare("video_outpainting").model_copy()
        succeed(catalog, clock, job, f"{n}" * 64, seconds=seconds)
    assert catalog.median_durations() == {"video_outpainting": pytest.approx(200)}

    result = estimate([done, fresh, fresh, image], settings=settings, catalog=catalog)
    first, second, repeat, other = result.jobs
    assert (first.runs, first.cost, first.skipped) == (False, 0, f"already succeeded as {done_id}")
    assert (second.runs, second.video_seconds, second.cost) == (True, 2, pytest.approx(0.20))
    assert (second.task_seconds, second.task_seconds_from) == (200, "catalog median")
    assert (repeat.runs, repeat.skipped) == (False, "same job as #2 of this batch")
    assert (other.task_seconds, other.task_seconds_from) == (420, "provider figure")
    # Two new tasks, at once: the longer one sets the wall time.
    assert result.cost == pytest.approx(0.70)
    assert result.wall_seconds == pytest.approx(420.5)
    assert result.summary.startswith("4 jobs (2 already paid for), 7 s of video, about USD 0.70")

    nothing = estimate([done], settings=settings, catalog=catalog)
    assert nothing.summary == "1 job (1 already paid for): nothing new to pay for"
    check_budget(nothing, 0)


def test_the_bill_matches_the_estimate_at_the_same_price(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The catalog costs a finished task with the price table the estimate used."""
    monkeypatch.setenv("VACEFLOW_PRICE_PER_SECOND", "0.125")
    monkeypatch.setenv("VACEFLOW_CATALOG_URL", f"sqlite:///{tmp_path / 'bill.db'}")
    settings = Settings()
    job = bare()
    before = estimate([job], settings=settings)
    with Catalog.from_settings(settings) as catalog:
        job_id = succeed(catalog, Clock(), job, "e" * 64, seconds=60)
        assert catalog.get(job_id).cost == pytest.approx(before.cost) == pytest.approx(0.625)
        assert catalog.total_costs() == {"USD": pytest.approx(0.625)}


# --- prices -----------------------------------------------------------------------------


def test_prices_follow_the_region_and_the_environment(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    jobs = [bare(), bare()]
    assert estimate(jobs, settings=settings).price.money(1.0) == "USD 1.00"
    assert estimate(jobs, settings=settings).cost == pytest.approx(1.00)

    monkeypatch.setenv("VACEFLOW_PRICE_PER_SECOND", "0.12")
    assert estimate(jobs, settings=Settings()).cost == pytest.approx(1.20)

    monkeypatch.delenv("VACEFLOW_PRICE_PER_SECOND")
    monkeypatch.setenv("DASHSCOPE_REGION", "beijing")
    beijing = estimate(jobs, settings=Settings())
    assert (beijing.currency, beijing.cost) == ("CNY", pytest.approx(7.00))
    assert "about CNY 7.00" in beijing.summary

    monkeypatch.setenv("VACEFLOW_PRICES", '{"cn": "0.65 CNY", "singapore": "0.11 USD"}')
    assert estimate(jobs, settings=Settings()).cost == pytest.approx(6.50)
    monkeypatch.setenv("VACEFLOW_PRICE_PER_SECOND", "0.6")  # the active region's, in CNY
    assert estimate(jobs, settings=Settings()).cost == pytest.approx(6.00)
    assert str(Settings().pricing.for_model("wan2.1-vace-plus")) == "USD 0.11/s"


def test_a_job_naming_the_other_regions_model_costs_in_its_money(settings: Settings) -> None:
    named = bare(model="wanx2.1-vace-plus")
    assert estimate([named], settings=settings).price.money(3.5) == "CNY 3.50"
    with pytest.raises(ConfigError, match="CNY and USD"):
        estimate([named, bare()], settings=settings)


def test_a_bad_price_is_refused(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VACEFLOW_PRICES", '{"beijing": "cheap"}')
    with pytest.raises(ValueError, match="amount"):
        Settings()
    monkeypatch.setenv("VACEFLOW_PRICES", '{"mars": "1 USD"}')
    with pytest.raises(ConfigError, match="mars"):
        Settings()


def test_budget_names_both_figures(settings: Settings) -> None:
    three = estimate([bare(), bare(), bare()], settings=settings)
    check_budget(three, 1.50)  # exactly the estimate (15 s x 0.10 is not exact in floats)
    with pytest.raises(BudgetExceeded) as refused:
        check_budget(three, 1.49)
    assert (refused.value.estimated, refused.value.budget) == (pytest.approx(1.5), 1.49)
    message = str(refused.value)
    for part in ("estimated USD 1.50", "budget of USD 1.49", "3 jobs"):
        assert part in message


# --- the catalog's figures --------------------------------------------------------------


def test_catalog_list_and_export_show_each_currency(
    settings: Settings, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VACEFLOW_CATALOG_URL", f"sqlite:///{tmp_path / 'both.db'}")
    clock = Clock()
    with Catalog.from_settings(Settings()) as catalog:
        succeed(catalog, clock, bare(), "1" * 64, seconds=60)
        succeed(catalog, clock, bare(), "2" * 64, seconds=60, video=3)
        succeed(catalog, clock, bare(model="wanx2.1-vace-plus"), "3" * 64, seconds=60)
        assert catalog.total_cost() == pytest.approx(0.80)
    runner = CliRunner()
    listed = runner.invoke(app, ["catalog", "list"], env={"COLUMNS": "200"})
    assert listed.exit_code == 0, listed.output
    assert {"USD 0.50", "USD 0.30", "CNY 3.50"} <= set(_cells(listed.stdout))
    exported = runner.invoke(app, ["catalog", "export", "--format", "csv"])
    assert exported.exit_code == 0, exported.output
    assert "total cost USD 0.80 + CNY 3.50" in exported.stderr


def _cells(table: str) -> list[str]:
    """The columns of a plain table: two spaces or more apart."""
    return [c for line in table.splitlines() for c in re.split(r"\s{2,}", line.strip())]


# --- the dry run ------------------------------------------------------------------------


def _dry_run(video: Path, *extra: str) -> list[str]:
    return ["run", "video_outpainting", "--prompt", "wider", "--video", str(video),
            "--dry-run", *extra]  # fmt: skip


def test_dry_run_prints_the_estimate_and_refuses_over_budget(
    media: MediaFactory, settings: Settings
) -> None:
    video = media.video(width=320, height=240, seconds=6)
    runner = CliRunner()

    ok = runner.invoke(app, _dry_run(video, "--budget", "0.50"), env={"COLUMNS": "200"})
    assert ok.exit_code == 0, ok.output
    assert "estimate: 1 job, 5 s of video, about USD 0.50, about 7 min at 2 at once" in ok.stdout
    assert "ready" in ok.stdout

    over = runner.invoke(app, _dry_run(video, "--budget", "0.40"), env={"COLUMNS": "200"})
    assert over.exit_code == 3, over.output
    assert "over budget" in over.stdout
    assert "estimated USD 0.50" in over.stdout
    assert "budget of USD 0.40" in over.stdout
    assert "nothing was submitted" in over.stdout

    as_json = runner.invoke(app, _dry_run(video, "--budget", "0.4", "--json"))
    assert as_json.exit_code == 3, as_json.output
    out = json.loads(as_json.stdout)
    assert out["ready"] is False
    assert out["estimate"]["cost"] == pytest.approx(0.5)
    assert out["estimate"]["jobs"][0]["video_seconds"] == 5
    assert out["error"]["type"] == "BudgetExceeded"
    assert (out["error"]["estimated"], out["error"]["budget"]) == (pytest.approx(0.5), 0.4)
    # A dry run leaves no catalog behind.
    assert not (settings.data_dir / "catalog.db").exists()


def test_dry_run_estimate_uses_the_region_and_an_existing_catalog(
    media: MediaFactory, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = Clock()
    with Catalog(default_catalog_url(settings), clock=clock).upgrade() as catalog:
        succeed(catalog, clock, bare("video_outpainting"), "9" * 64, seconds=150)
    monkeypatch.setenv("DASHSCOPE_REGION", "beijing")
    video = media.video(width=320, height=240, seconds=2)
    result = CliRunner().invoke(app, _dry_run(video, "--json"))
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["ready"] is True
    assert out["estimate"]["currency"] == "CNY"
    assert out["estimate"]["cost"] == pytest.approx(1.40)
    assert out["estimate"]["jobs"][0]["task_seconds"] == pytest.approx(150)
    assert out["estimate"]["summary"] == (
        "1 job, 2 s of video, about CNY 1.40, about 2 min at 2 at once"
    )
