"""Jobs from outside the process, as an outsider would send them: hostile job files in
one real `watch` pass beside a good one, hostile parameters of deployment runs started
through the Prefect API, and job files reaching for vaceflow's own data folder.

What is asserted is what the owner would see: where each file ended and why (its
sidecar names the input, the rule and how to allow it), the requests the internal
server got (none), the emulator's submissions (the good jobs' only), what was staged.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.fixtures_flows import VaceEnv
from tests.fixtures_serve import OUTPAINTING, prefect_client
from tests.fixtures_serve import served as served  # the fixtures
from tests.fixtures_trust import Server
from tests.fixtures_trust import internal_server as internal_server
from tests.fixtures_trust import loopback_name as loopback_name
from tests.fixtures_trust import redirector as redirector
from tests.media import MediaFactory
from vaceflow.catalog import Catalog

MakeEnv = Callable[..., VaceEnv]


def _body(video: str, prompt: str = "a wider view of the street") -> dict[str, Any]:
    return {
        "model": "wan2.1-vace-plus",
        "input": {"function": "video_outpainting", "prompt": prompt, "video_url": video},
        "parameters": {"top_scale": 1.5, "bottom_scale": 1.5},
    }


def _sidecar(path: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(path.with_name(path.name + ".result.json").read_text())
    return loaded


def _refusal(sidecar: dict[str, Any]) -> dict[str, Any]:
    """The file's refusal, or its one body's (a refusal found while fetching)."""
    found = sidecar["refusal"] or next(j["refusal"] for j in sidecar["jobs"] if j["refusal"])
    assert isinstance(found, dict)
    return found


def _fetched(env: VaceEnv) -> list[Path]:
    """The inputs copied or downloaded for jobs (staged inputs are deleted after a job)."""
    return [p for p in (env.data / "work").rglob("*") if p.is_file()]


@pytest.fixture
def clip(media: MediaFactory) -> Path:
    return media.video(width=320, height=240, fps=16, seconds=1.0, name="trust-watch")


def test_hostile_job_files_fail_with_the_rule_and_the_good_one_runs(
    vace_env: MakeEnv,
    tmp_path: Path,
    clip: Path,
    internal_server: Server,
    redirector: Server,
    loopback_name: str | None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flows.watch import watch

    env = vace_env()
    monkeypatch.setenv("VACEFLOW_ALLOWED_HOSTS", "127.0.0.2")  # a trusted host; it redirects
    inbox, private = tmp_path / "inbox", tmp_path / "private"
    inbox.mkdir()
    private.mkdir()
    (inbox / "clip.mp4").write_bytes(clip.read_bytes())
    (private / "secret.mp4").write_bytes(clip.read_bytes())
    (inbox / "link.mp4").symlink_to(private / "secret.mp4")
    secret_key = f"{env.prefix}/private/secret.mp4"
    env.s3.client().put_object(Bucket=env.s3.bucket, Key=secret_key, Body=clip.read_bytes())

    hostile = {  # file -> (its video_url, the start of the rule it breaks)
        "absolute.yaml": (str(private / "secret.mp4"), "local files only inside"),
        "dotdot.yaml": ("../private/secret.mp4", "local files only inside"),
        "symlink.yaml": ("link.mp4", "local files only inside"),
        "loopback.yaml": (internal_server.url(), "http(s) inputs only from public hosts"),
        "link-local.yaml": ("http://169.254.169.254/latest/clip.mp4", "http(s) inputs only"),
        "redirect.yaml": (redirector.url(), "http(s) inputs only from public hosts"),
        "localhost.yaml": (internal_server.url(host="localhost"), "http(s) inputs only"),
        "s3-bucket.yaml": (f"s3://{env.s3.bucket}/{secret_key}", "s3:// inputs only under"),
    }
    if loopback_name is not None:
        hostile["dns-name.yaml"] = (internal_server.url(host=loopback_name), "http(s) inputs")
    for name, (video, _) in hostile.items():
        (inbox / name).write_text(yaml.safe_dump(_body(video, prompt=name)))
    padding = "# " + "x" * 1024 * 1024 + "\n"
    (inbox / "oversized.yaml").write_text(yaml.safe_dump(_body("clip.mp4")) + padding)
    bomb = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    bomb += [f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]" for n in range(1, 10)]
    (inbox / "bomb.yaml").write_text("\n".join(bomb) + "\ninput: *a9\n")
    (inbox / "good.yaml").write_text(yaml.safe_dump(_body("clip.mp4")))

    results = {r.file: r for r in watch(str(inbox))}

    expected = {name: "failed" for name in [*hostile, "oversized.yaml", "bomb.yaml"]}
    assert {name: r.status for name, r in results.items()} == expected | {"good.yaml": "done"}
    rules = {name: rule for name, (_, rule) in hostile.items()} | {
        "oversized.yaml": "job files at most 1048576 bytes",
        "bomb.yaml": "a job file expands to at most",
    }
    for name, rule in rules.items():
        refusal = _refusal(_sidecar(inbox / "failed" / name))
        assert refusal["rule"].startswith(rule), (name, refusal)
        assert refusal["input"], name
        assert "VACEFLOW_" in refusal["allow"] or "copy the file" in refusal["allow"], name
    assert _refusal(_sidecar(inbox / "failed" / "absolute.yaml"))["input"] == (
        "absolute.yaml input.video_url"
    )
    assert (
        "redirects to http://127.0.0.1"
        in (_sidecar(inbox / "failed" / "redirect.yaml")["jobs"][0]["error"])
    )

    assert internal_server.requests == []  # not one request reached the internal server
    assert redirector.requests == ["/secret.mp4"]  # the trusted host, asked once
    assert env.submissions() == 1  # the good file's job, and nothing else
    assert len(_fetched(env)) == 1  # its clip, the only input read
    [good] = _sidecar(inbox / "done" / "good.yaml")["jobs"]
    assert good["status"] == "succeeded"
    assert sorted(p.name for p in inbox.iterdir() if p.is_file() or p.is_symlink()) == [
        "clip.mp4",
        "link.mp4",
    ]


def test_a_job_file_cannot_read_vaceflows_own_data_folder(
    vace_env: MakeEnv, tmp_path: Path, clip: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The watch deployment's own setting: the inbox in the data folder, beside the env
    file with the keys, the catalog and the stack's state; the allowed roots widened to
    a folder that contains all of it."""
    from flows.watch import watch

    env = vace_env()
    monkeypatch.setenv("VACEFLOW_ALLOWED_ROOTS", str(tmp_path))  # contains the data folder
    data = env.data
    inbox = data / "inbox"
    inbox.mkdir(parents=True)
    (data / "env").write_text(f"DASHSCOPE_API_KEY={env.env['DASHSCOPE_API_KEY']}\n")
    (data / "stack.json").write_text('{"api_key": "not to be read"}')
    Catalog.from_settings().close()  # the catalog exists
    (inbox / "clip.mp4").write_bytes(clip.read_bytes())
    (inbox / "key.mp4").symlink_to(data / "env")

    hostile = {
        "env-relative.yaml": "../env",
        "env-absolute.yaml": str(data / "env"),
        "env-symlink.yaml": "key.mp4",
        "catalog.yaml": str(data / "catalog.db"),
        "stack.yaml": "../stack.json",
    }
    for name, video in hostile.items():
        (inbox / name).write_text(yaml.safe_dump(_body(video, prompt=name)))
    (inbox / "good.yaml").write_text(yaml.safe_dump(_body("clip.mp4")))

    results = {r.file: r.status for r in watch()}  # the default source: this inbox

    assert results == {name: "failed" for name in hostile} | {"good.yaml": "done"}
    for name in hostile:
        sidecar = _sidecar(inbox / "failed" / name)
        assert _refusal(sidecar)["rule"] == "vaceflow's data folder is never read for a job"
        assert env.env["DASHSCOPE_API_KEY"] not in json.dumps(sidecar)
    assert env.submissions() == 1
    assert len(_fetched(env)) == 1


@pytest.mark.timeout(600)  # `vaceflow serve` and six runs, each a process, on two cores
def test_deployment_runs_with_hostile_parameters_fail_and_pay_nothing(
    served: tuple[VaceEnv, str], clip: Path, internal_server: Server
) -> None:
    """Parameters as a Prefect UI user types them, through the API, on `vaceflow serve`:
    the owner shared the session's temporary folder (VACEFLOW_ALLOWED_ROOTS), no host."""
    from prefect.deployments import run_deployment

    env, api = served
    (env.data / "env").parent.mkdir(parents=True, exist_ok=True)
    (env.data / "env").write_text(f"DASHSCOPE_API_KEY={env.env['DASHSCOPE_API_KEY']}\n")
    hostile = {
        "loopback": internal_server.url(),
        "localhost": internal_server.url(host="localhost"),
        "env file": str(env.data / "env"),
        "outside": "/etc/hostname",
    }
    videos = {f"hostile {what}": video for what, video in hostile.items()} | {"good": str(clip)}
    with prefect_client(api) as client:  # all at once: each run is a process of its own
        runs = {
            what: run_deployment(
                OUTPAINTING,
                parameters={"prompt": what, "video": video, "left_scale": 1.5},
                timeout=0,
            )
            for what, video in videos.items()
        }
        # The watch deployment may not be pointed at a folder the owner did not share.
        runs["watch /etc"] = run_deployment("watch/watch", parameters={"source": "/etc"}, timeout=0)
        ended = _wait_for_all(client, [run.id for run in runs.values()])
        logs = {what: _run_log(client, run.id) for what, run in runs.items()}

    states = {what: ended[run.id] for what, run in runs.items()}
    assert states == {what: "FAILED" for what in runs if what != "good"} | {"good": "COMPLETED"}
    for what in hostile:
        assert "to allow it" in logs[f"hostile {what}"], (what, logs[f"hostile {what}"][-2000:])
    assert "VACEFLOW_ALLOWED_HOSTS" in logs["hostile loopback"]
    assert "data folder" in logs["hostile env file"]
    assert "outside the folders jobs may read" in logs["watch /etc"]
    assert internal_server.requests == []
    assert env.submissions() == 1


def _wait_for_all(client: Any, ids: list[Any], timeout: float = 240) -> dict[Any, str]:
    """Each run's final state type, once all have ended."""
    deadline = time.monotonic() + timeout
    while True:
        states = {i: client.read_flow_run(i).state for i in ids}
        if all(s is not None and s.is_final() for s in states.values()):
            return {i: s.type.value for i, s in states.items()}
        assert time.monotonic() < deadline, {i: s and s.type for i, s in states.items()}
        time.sleep(1)


def _run_log(client: Any, run_id: Any) -> str:
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId

    logs = client.read_logs(LogFilter(flow_run_id=LogFilterFlowRunId(any_=[run_id])))
    return "\n".join(str(entry.message) for entry in logs)


def test_long_video_reads_its_own_clips_under_an_outsiders_policy(
    vace_env: MakeEnv, media: MediaFactory
) -> None:
    """As a deployment's run applies it: only the first frame's folder is shared, and the
    segments' tail clips (in the data folder) are read because long_video made them."""
    from flows.long_video import long_video
    from tasks.trust import policy_scope
    from vaceflow.errors import InputNotAllowed
    from vaceflow.settings import Settings
    from vaceflow.trust import TrustPolicy

    env = vace_env(latency=0.2)
    start = media.image(width=640, height=360, name="trust-long-start")
    owners = TrustPolicy.from_settings(Settings.load())

    with policy_scope(owners), pytest.raises(InputNotAllowed, match="outside the folders"):
        long_video(prompt="a boat", segments=2, first_frame=str(start))
    assert env.submissions() == 0

    with policy_scope(owners.allowing(start.parent)):
        joined = long_video(prompt="a boat", segments=2, first_frame=str(start))
    assert joined.output is not None
    assert env.submissions() == 2
