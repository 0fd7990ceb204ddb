"""The Prefect API a run reports to, read without importing Prefect
(`vaceflow.cli.prefect_api`), is the one Prefect itself resolves: the same address,
credentials and TLS settings from the same places in the same order (the environment,
`.env`, `prefect.toml`, `pyproject.toml`, the active profile), or none when it cannot
tell for certain. Each case is checked against Prefect's own `Settings()`, in one child
process that imports both.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

CASES: dict[str, dict[str, Any]] = {
    "nothing set": {},
    "the environment": {
        "env": {"PREFECT_API_URL": "http://env:1/api", "PREFECT_API_KEY": "pnu_env"},
    },
    "a .env file": {
        "dotenv": "PREFECT_API_URL=http://dotenv:2/api\nPREFECT_API_AUTH_STRING='admin:pw'\n",
    },
    "prefect.toml": {
        "toml": '[api]\nurl = "http://toml:3/api"\ntls_insecure_skip_verify = true\n'
        "request_timeout = 12.5\n",
    },
    "pyproject.toml": {"pyproject": '[tool.prefect.api]\nurl = "http://pyproject:4/api"\n'},
    "the active profile": {
        "profiles": 'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://profile:5/api"\n'
        'PREFECT_API_KEY = "pnu_profile"\nPREFECT_API_SSL_CERT_FILE = "/etc/ca.pem"\n',
    },
    "the environment over every file": {
        "env": {"PREFECT_API_URL": "http://env:1/api"},
        "dotenv": "PREFECT_API_URL=http://dotenv:2/api\n",
        "toml": '[api]\nurl = "http://toml:3/api"\n',
        "profiles": 'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://profile:5/api"\n',
    },
    "each file over the next": {
        "dotenv": "PREFECT_API_KEY=pnu_dotenv\n",
        "toml": '[api]\nurl = "http://toml:3/api"\nkey = "pnu_toml"\nrequest_timeout = 7\n',
        "pyproject": '[tool.prefect.api]\nurl = "http://pyproject:4/api"\n'
        "request_timeout = 9\ntls_insecure_skip_verify = true\n",
        "profiles": 'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://profile:5/api"\n'
        'PREFECT_API_AUTH_STRING = "a:b"\n',
    },
    "a profile chosen by PREFECT_PROFILE": {
        "env": {"PREFECT_PROFILE": "other"},
        "profiles": 'active = "team"\n[profiles.team]\nPREFECT_API_URL = "http://profile:5/api"\n'
        '[profiles.other]\nPREFECT_API_URL = "http://other:6/api"\n',
    },
}

CHILD = """
import json, os, sys
from pathlib import Path
cases = json.loads(sys.argv[1])
from vaceflow.cli.running import server_read_ahead
from prefect.settings import Settings
out = {}
base = dict(os.environ)
for name, case in cases.items():
    os.environ.clear()
    os.environ.update(base | case["env"])
    os.chdir(case["dir"])
    ours = server_read_ahead()
    api = Settings().api
    def plain(model):
        if model is None:
            return None
        data = model.model_dump(include={"url", "key", "auth_string", "tls_insecure_skip_verify",
                                         "ssl_cert_file", "request_timeout"})
        for k in ("key", "auth_string"):
            data[k] = data[k].get_secret_value() if data[k] is not None else None
        return data
    out[name] = {"ours": plain(ours), "prefect": plain(api) if api.url else None}
print(json.dumps(out))
"""


def test_the_api_read_ahead_is_the_one_prefect_resolves(tmp_path: Path) -> None:
    cases: dict[str, dict[str, Any]] = {}
    for n, (name, case) in enumerate(CASES.items()):
        folder = tmp_path / f"case{n}"
        home = folder / "home"
        home.mkdir(parents=True)
        for key, file in (
            ("dotenv", ".env"),
            ("toml", "prefect.toml"),
            ("pyproject", "pyproject.toml"),
        ):
            if key in case:
                (folder / file).write_text(case[key])
        if "profiles" in case:
            (home / "profiles.toml").write_text(case["profiles"])
        env = {"PREFECT_HOME": str(home)} | case.get("env", {})
        cases[name] = {"dir": str(folder), "env": env}
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PREFECT_", "SSL_CERT_FILE"))}
    done = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(cases)],
        env=base,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    for name in CASES:
        assert found[name]["ours"] == found[name]["prefect"], name
    assert found["nothing set"]["prefect"] is None
    assert found["the environment over every file"]["ours"]["url"] == "http://env:1/api"
    each = found["each file over the next"]["ours"]
    assert (each["url"], each["key"], each["request_timeout"]) == (
        "http://toml:3/api",
        "pnu_dotenv",
        7.0,
    )
    assert each["tls_insecure_skip_verify"] is True  # only pyproject sets it
    assert each["auth_string"] == "a:b"  # only the profile sets it


def test_a_profile_the_reader_cannot_see_leaves_it_to_prefect(tmp_path: Path) -> None:
    """Prefect's own profiles ("local" names a server) and a profiles file named in a
    file: the run asks Prefect (it imports it first, as before)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "profiles.toml").write_text('active = "local"\n')
    code = "from vaceflow.cli.running import server_read_ahead as r; print(r() is None)"
    base = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    for env, files in (
        ({"PREFECT_HOME": str(home)}, {}),
        ({}, {".env": "PREFECT_PROFILES_PATH=/elsewhere/profiles.toml\n"}),
    ):
        folder = tmp_path / f"case{len(env)}"
        folder.mkdir()
        for file, text in files.items():
            (folder / file).write_text(text)
        done = subprocess.run(
            [sys.executable, "-c", code],
            env=base | {"PREFECT_HOME": str(tmp_path / "empty")} | env,
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert done.stdout.strip() == "True", env or files
