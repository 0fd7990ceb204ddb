"""The trust policy on real sockets and files: what an outsider's job may make a worker
read. Every refusal names the input, the rule and the setting that would allow it, and
the servers it points at count the requests that reached them (none may)."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
import yaml

from tests.fixtures_trust import Server
from tests.fixtures_trust import internal_server as internal_server  # the fixtures
from tests.fixtures_trust import loopback_name as loopback_name
from tests.fixtures_trust import redirector as redirector
from tests.media import MediaFactory
from vaceflow.errors import InputNotAllowed, JobInvalid
from vaceflow.jobfile import parse_job_file
from vaceflow.media.sources import Sources
from vaceflow.settings import Settings
from vaceflow.trust import TrustPolicy


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def body(video: str) -> dict[str, object]:
    return {"input": {"function": "video_outpainting", "prompt": "wider", "video_url": video}}


# --- http(s) -------------------------------------------------------------------------------


def test_a_redirect_to_loopback_is_refused_before_it_is_followed(
    redirector: Server, internal_server: Server, tmp_path: Path
) -> None:
    policy = TrustPolicy(hosts=("127.0.0.2",))  # the team trusts the redirecting host
    with pytest.raises(InputNotAllowed) as caught:
        Sources(tmp_path, policy=policy).fetch(redirector.url(), name="video")
    refused = caught.value
    assert "redirects to http://127.0.0.1" in str(refused)
    assert "loopback" in str(refused)
    assert "VACEFLOW_ALLOWED_HOSTS" in refused.allow
    assert refused.input_name == "video"
    assert len(redirector.requests) == 1
    assert internal_server.requests == []
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_the_connection_itself_only_goes_to_checked_addresses(internal_server: Server) -> None:
    """Even a caller that skipped `check_url` cannot reach a name that resolves to
    loopback: the client resolves, checks and connects by address itself."""
    policy = TrustPolicy()
    with (
        policy.http_client(name="video", timeout=5) as client,
        pytest.raises(InputNotAllowed, match=r"localhost resolves to 127\.0\.0\.1"),
    ):
        client.get(internal_server.url(host="localhost"))
    assert internal_server.requests == []


def test_names_that_resolve_to_loopback_are_refused(
    internal_server: Server, loopback_name: str | None, tmp_path: Path
) -> None:
    names = ["localhost", *([loopback_name] if loopback_name else [])]
    for host in names:
        with pytest.raises(InputNotAllowed, match=f"{host} resolves to 127.0.0.1") as caught:
            Sources(tmp_path, policy=TrustPolicy()).fetch(
                internal_server.url(host=host), name="video"
            )
        assert caught.value.rule.startswith("http(s) inputs only from public hosts")
    assert internal_server.requests == []


@pytest.mark.parametrize(
    "url",
    [
        "http://169.254.169.254/latest/meta-data/",
        "http://[fe80::1]/clip.mp4",
        "http://[fc00::1]/clip.mp4",
        "http://10.0.0.1/clip.mp4",
        "http://[::ffff:127.0.0.1]/clip.mp4",
        "http://224.0.0.1/clip.mp4",
        "http://no-such-host.invalid/clip.mp4",
    ],
)
def test_non_public_and_unresolvable_hosts_are_refused(url: str, tmp_path: Path) -> None:
    with pytest.raises(InputNotAllowed) as caught:
        Sources(tmp_path, policy=TrustPolicy()).fetch(url, name="video")
    assert caught.value.rule.startswith("http(s)")


def test_a_host_the_settings_trust_is_fetched(
    internal_server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("VACEFLOW_ALLOWED_HOSTS", "media.example, 127.0.0.0/30")
    policy = TrustPolicy.from_settings(Settings())
    got = Sources(tmp_path, policy=policy).fetch(internal_server.url(), name="video")
    assert got.stat().st_size > 0
    assert internal_server.requests == ["/secret.mp4"]


def test_the_person_running_the_process_is_not_restricted(
    redirector: Server, internal_server: Server, tmp_path: Path
) -> None:
    """The CLI's policy: redirects (checked hop by hop all the same) are followed."""
    got = Sources(tmp_path).fetch(redirector.url(), name="video")
    assert got.stat().st_size > 0
    assert internal_server.requests == ["/secret.mp4"]


# --- local paths ---------------------------------------------------------------------------


@pytest.fixture
def folders(tmp_path: Path, media: MediaFactory) -> tuple[Path, Path]:
    """(an allowed folder with a clip, a private folder beside it with a secret clip)."""
    allowed, private = tmp_path / "allowed", tmp_path / "private"
    allowed.mkdir()
    private.mkdir()
    clip = media.video(width=320, height=240, fps=16, seconds=1.0, name="trust")
    (allowed / "clip.mp4").write_bytes(clip.read_bytes())
    (private / "secret.mp4").write_bytes(clip.read_bytes())
    return allowed, private


def test_local_files_only_inside_the_allowed_folders(
    folders: tuple[Path, Path], tmp_path: Path
) -> None:
    allowed, private = folders
    (allowed / "link.mp4").symlink_to(private / "secret.mp4")
    (allowed / "sub").symlink_to(private, target_is_directory=True)
    policy = TrustPolicy().allowing(allowed)
    sources = Sources(tmp_path / "work", policy=policy)

    got = sources.fetch(str(allowed / "clip.mp4"), name="video")
    assert digest(got) == digest(allowed / "clip.mp4")
    assert got.is_relative_to(tmp_path / "work")  # a copy of the file that was checked

    for ref in (
        str(private / "secret.mp4"),
        f"{allowed}/../private/secret.mp4",
        str(allowed / "link.mp4"),
        str(allowed / "sub" / "secret.mp4"),
        (private / "secret.mp4").as_uri(),
    ):
        with pytest.raises(InputNotAllowed) as caught:
            sources.fetch(ref, name="video")
        assert "outside the folders jobs may read" in str(caught.value)
        assert caught.value.allow == f"add {private} to VACEFLOW_ALLOWED_ROOTS (comma-separated)"


def test_the_file_actually_opened_is_checked(folders: tuple[Path, Path]) -> None:
    """A folder swapped for a symlink between the check and the open reads nothing."""
    allowed, private = folders
    policy = TrustPolicy().allowing(allowed)
    fd = os.open(private / "secret.mp4", os.O_RDONLY)
    try:
        with pytest.raises(InputNotAllowed):
            policy.check_opened(fd, allowed / "clip.mp4", name="video")
    finally:
        os.close(fd)


def test_the_data_folder_stays_shut_even_inside_an_allowed_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    (data / "inbox").mkdir(parents=True)
    (data / "env").write_text("DASHSCOPE_API_KEY=sk-secret\n")
    monkeypatch.setenv("VACEFLOW_DATA_DIR", str(data))
    monkeypatch.setenv("VACEFLOW_ALLOWED_ROOTS", str(tmp_path))  # contains the data folder
    policy = TrustPolicy.from_settings(Settings())
    with pytest.raises(InputNotAllowed) as caught:
        policy.check(str(data / "env"), name="video")
    assert caught.value.rule == "vaceflow's data folder is never read for a job"

    # A root inside it (the default inbox) opens that root's own files, not the rest.
    inbox = policy.allowing(data / "inbox")
    inbox.check(str(data / "inbox" / "clip.mp4"), name="video")
    with pytest.raises(InputNotAllowed, match="data folder"):
        inbox.check(str(data / "inbox" / ".." / "env"), name="video")


# --- s3:// and oss:// ----------------------------------------------------------------------


def test_s3_inputs_only_from_allowed_prefixes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VACEFLOW_S3_BUCKET", "stage")
    monkeypatch.setenv("VACEFLOW_S3_PREFIX", "team")
    monkeypatch.setenv("VACEFLOW_ALLOWED_S3", '["s3://media/shared/"]')
    policy = TrustPolicy.from_settings(Settings())
    policy.check("s3://stage/team/inputs/abc.mp4", name="video")  # the staging inputs
    policy.check("s3://media/shared/a/b.mp4", name="video")
    for ref in (
        "s3://stage/team/outputs/job/video.mp4",
        "s3://media/sharedother/b.mp4",
        "s3://media/shared/../private/b.mp4",
        "s3://other/x.mp4",
    ):
        with pytest.raises(InputNotAllowed, match=r"VACEFLOW_ALLOWED_S3|segments") as caught:
            policy.check(ref, name="video")
        assert caught.value.rule.startswith("s3:// inputs only under the allowed prefixes")
    with pytest.raises(InputNotAllowed, match="vaceflow's own staging"):
        policy.check("oss://dashscope-instant/x.mp4", name="video")


# --- job files -----------------------------------------------------------------------------


def test_a_yaml_alias_bomb_is_refused_before_it_expands(tmp_path: Path) -> None:
    # Nine levels of nine: 9**9 (387 million) strings once expanded, 400 bytes of text.
    lines = ['a0: &a0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for n in range(1, 10):
        lines.append(f"a{n}: &a{n} [" + ",".join([f"*a{n - 1}"] * 9) + "]")
    bomb = ("\n".join(lines) + "\ninput: *a9\n").encode()
    with pytest.raises(InputNotAllowed) as caught:
        parse_job_file("bomb.yaml", bomb, str(tmp_path), TrustPolicy())
    assert caught.value.input_name == "bomb.yaml"
    assert "aliases are expanded" in str(caught.value)
    assert "VACEFLOW_JOB_FILE_MAX_BODIES" in caught.value.allow

    recursive = b"input: &loop [*loop]\n"
    with pytest.raises(InputNotAllowed, match="contains itself"):
        parse_job_file("loop.yaml", recursive, str(tmp_path), TrustPolicy())


def test_job_files_are_bounded_in_bytes_bodies_and_depth(tmp_path: Path) -> None:
    policy = TrustPolicy(job_file_bytes=4096, job_file_bodies=3)
    good = yaml.safe_dump([body("clip.mp4")] * 3).encode()
    assert len(parse_job_file("ok.yaml", good, str(tmp_path), policy.allowing(tmp_path))) == 3

    with pytest.raises(InputNotAllowed, match="larger than 4096 bytes") as caught:
        parse_job_file("big.yaml", good + b"#" * 4096, str(tmp_path), policy)
    assert caught.value.allow == "raise VACEFLOW_JOB_FILE_MAX_BYTES"
    with pytest.raises(InputNotAllowed, match="4 bodies") as caught:
        parse_job_file("many.yaml", yaml.safe_dump([body("c.mp4")] * 4).encode(), "/", policy)
    assert "VACEFLOW_JOB_FILE_MAX_BODIES" in caught.value.allow
    with pytest.raises((InputNotAllowed, JobInvalid)):
        parse_job_file("deep.yaml", b"[" * 2000 + b"]" * 2000, "/", policy)


def test_every_reference_of_every_body_is_checked_before_any_runs(tmp_path: Path) -> None:
    bodies = [body("clip.mp4"), body("../outside.mp4")]
    with pytest.raises(InputNotAllowed) as caught:
        parse_job_file(
            "two.yaml",
            yaml.safe_dump(bodies).encode(),
            str(tmp_path / "inbox"),
            TrustPolicy().allowing(tmp_path / "inbox"),
        )
    assert caught.value.input_name == "two.yaml body 1 input.video_url"


def test_the_settings_take_lists_as_commas_or_json(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VACEFLOW_ALLOWED_ROOTS", "/srv/media, /mnt/shared")
    monkeypatch.setenv("VACEFLOW_ALLOWED_HOSTS", '["media.lan", "10.1.0.0/16"]')
    settings = Settings()
    assert settings.allowed_roots == (Path("/srv/media"), Path("/mnt/shared"))
    assert settings.allowed_hosts == ("media.lan", "10.1.0.0/16")
    assert settings.allowed_s3 == ()
