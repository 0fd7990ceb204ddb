"""How fast the emulator starts and how many status queries it answers, beside a bare app.

    .venv/bin/python bench/bench_emulator.py [--runs 3] [--seconds 5] [--workers 8]

Start-up: from spawning `vaceflow emulator` to its first healthy answer
(`/_emulator/health`). Throughput: `GET /api/v1/tasks/{id}` a second, round-robin over
50 tasks in flight (submitted and not ended: the account's 2 RUNNING, 48 PENDING), with
the query limit off. Both are measured the same way for a bare FastAPI hello-world app
served by the same uvicorn setup (a process of its own, same uvicorn options), and the
emulator's figure is reported as a ratio of the bare app's.

The load generator shares the machine's cores with the server: the ratio is the
meaningful number, the absolute figures are this machine's, once. Results go to
bench/results/bench_emulator-<time>.json.
"""

from __future__ import annotations

import argparse
import asyncio
import http.server
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from vaceflow.client import Client, RetryPolicy

TASKS_IN_FLIGHT = 50
START_TIMEOUT = 60.0

# The bare app, run by `python bench_emulator.py --serve-hello PORT` with the uvicorn
# options EmulatorServer uses (lifespan on, no access log, the CLI's log level).
HELLO_LOG_LEVEL = "info"


def serve_hello(port: int) -> None:
    import uvicorn
    from fastapi import FastAPI

    app = FastAPI(docs_url=None, redoc_url=None)

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/api/v1/tasks/{task_id}")
    async def task(task_id: str) -> dict[str, Any]:
        return {"request_id": "r", "output": {"task_id": task_id, "task_status": "RUNNING"}}

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    config = uvicorn.Config(app, log_level=HELLO_LOG_LEVEL, lifespan="on", access_log=False)
    uvicorn.Server(config).run(sockets=[sock])


# --- processes -----------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def vaceflow_command() -> list[str]:
    script = Path(sys.executable).with_name("vaceflow")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from vaceflow.cli import main; main()"]


@dataclass
class Server:
    name: str
    root: str
    health: str
    headers: dict[str, str]
    process: subprocess.Popen[bytes]
    startup_seconds: float


@contextmanager
def spawned(
    name: str, command: list[str], port: int, health: str, key: str | None
) -> Iterator[Server]:
    """Spawn, time until the first healthy answer, yield, stop."""
    from _common import stop_child  # not at the top: the bare app's process loads this file

    root = f"http://127.0.0.1:{port}"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    began = time.perf_counter()
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        with httpx.Client(timeout=1.0, trust_env=False) as http:
            while True:
                if process.poll() is not None:
                    err = (process.stderr.read() if process.stderr else b"").decode()[-2000:]
                    raise SystemExit(f"{name} exited with {process.returncode}:\n{err}")
                try:
                    if http.get(root + health).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.perf_counter() - began > START_TIMEOUT:
                    raise SystemExit(f"{name} did not answer {health} within {START_TIMEOUT} s")
                time.sleep(0.005)
        elapsed = time.perf_counter() - began
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        yield Server(name, root, health, headers, process, elapsed)
    finally:
        stop_child(process, timeout=10)


def emulator_command(port: int, key: str) -> list[str]:
    return [
        *vaceflow_command(),
        "emulator",
        "--api-key",
        key,
        "--port",
        str(port),
        "--latency",
        "3600",
        "--submit-qps",
        "0",
        "--query-qps",
        "0",
    ]


def hello_command(port: int) -> list[str]:
    return [sys.executable, str(Path(__file__).resolve()), "--serve-hello", str(port)]


# --- inputs and load ------------------------------------------------------------------------


@contextmanager
def served_input() -> Iterator[str]:
    """A small real clip over loopback HTTP, so running tasks can fetch their input."""
    from _common import make_clip

    with tempfile.TemporaryDirectory(prefix="bench-emulator-") as folder:
        make_clip(Path(folder), "in.mp4")

        class Quiet(http.server.SimpleHTTPRequestHandler):
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                super().__init__(*args, directory=folder, **kwargs)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Quiet)
        threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True).start()
        try:
            yield f"http://127.0.0.1:{httpd.server_address[1]}/in.mp4"
        finally:
            httpd.shutdown()
            httpd.server_close()


def put_tasks_in_flight(server: Server, key: str, video_url: str, settle: float) -> list[str]:
    job = {
        "input": {"function": "video_outpainting", "prompt": "bench", "video_url": video_url},
        "parameters": {"top_scale": 1.5},
    }
    retry = RetryPolicy(attempts=10, base=0.1, cap=1.0)
    with Client(key, base_url=server.root + "/api/v1", retry=retry) as client:
        ids = [client.submit(job).output.task_id for _ in range(TASKS_IN_FLIGHT)]
        time.sleep(settle)  # let the RUNNING ones fetch, check and render
        waiting = [client.get(i).status for i in ids]
    if not all(s.is_waiting for s in waiting):
        raise SystemExit(f"tasks ended during the bench: {sorted(set(waiting))}")
    return ids


def cpu_seconds(pid: int) -> float:
    """User + system CPU time a process has used (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Connection:
    """One keep-alive HTTP/1.1 connection on raw asyncio streams.

    A load generator several times cheaper than an HTTP client library, so that on
    shared cores the server, not the generator, sets the pace.
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, root: str) -> Connection:
        url = httpx.URL(root)
        reader, writer = await asyncio.open_connection(url.host, url.port)
        return cls(reader, writer)

    async def get(self, head: bytes) -> int:
        self.writer.write(head)
        status_line = await self.reader.readline()
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return int(status_line.split()[1])

    def close(self) -> None:
        self.writer.close()


async def hammer(server: Server, ids: list[str], seconds: float, workers: int) -> dict[str, Any]:
    """Status queries a second over `seconds`, after a short warm-up; and the server's CPU
    time per query, which does not depend on how busy the shared cores are."""
    host = httpx.URL(server.root).netloc.decode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in server.headers.items())
    heads = [f"GET /api/v1/tasks/{i} HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n".encode() for i in ids]
    counts = {"ok": 0, "other": 0, "errors": 0}
    latencies: list[float] = []
    connections = [await Connection.open(server.root) for _ in range(workers)]

    async def worker(conn: Connection, offset: int, stop_at: float, record: bool) -> None:
        n = offset
        while time.perf_counter() < stop_at:
            head = heads[n % len(heads)]
            n += workers
            began = time.perf_counter()
            try:
                status = await conn.get(head)
            except (OSError, ValueError, asyncio.IncompleteReadError):
                counts["errors"] += record
                return
            if record:
                latencies.append(time.perf_counter() - began)
                counts["ok" if status == 200 else "other"] += 1

    async def phase(duration: float, record: bool) -> float:
        began = time.perf_counter()
        stop_at = began + duration
        jobs = (worker(c, i, stop_at, record) for i, c in enumerate(connections))
        await asyncio.gather(*jobs)
        return time.perf_counter() - began

    try:
        await phase(min(1.0, seconds / 5), record=False)
        cpu_before = cpu_seconds(server.process.pid)
        elapsed = await phase(seconds, record=True)
        cpu = cpu_seconds(server.process.pid) - cpu_before
    finally:
        for conn in connections:
            conn.close()
    latencies.sort()
    return {
        "queries_per_second": counts["ok"] / elapsed,
        "server_cpu_ms_per_query": 1000 * cpu / counts["ok"] if counts["ok"] else None,
        "answered": counts["ok"],
        "non_200": counts["other"],
        "errors": counts["errors"],
        "p50_ms": 1000 * latencies[len(latencies) // 2] if latencies else None,
        "p99_ms": 1000 * latencies[int(len(latencies) * 0.99)] if latencies else None,
    }


# --- the run ----------------------------------------------------------------------------------


@dataclass
class Subject:
    name: str
    command: Callable[[int], list[str]]
    health: str
    key: str | None
    load: Callable[[Server], dict[str, Any]]


def measure(subjects: list[Subject], runs: int) -> dict[str, dict[str, Any]]:
    """Start-ups interleaved (A, B, A, B...) so a busy moment hits both; load on the last."""
    startups: dict[str, list[float]] = {s.name: [] for s in subjects}
    results: dict[str, dict[str, Any]] = {s.name: {} for s in subjects}
    for run in range(runs):
        for subject in subjects:
            port = free_port()
            command = subject.command(port)
            with spawned(subject.name, command, port, subject.health, subject.key) as server:
                startups[subject.name].append(server.startup_seconds)
                if run == runs - 1:
                    results[subject.name] = subject.load(server)
    for name, times in startups.items():
        results[name]["startup_seconds"] = {
            "median": statistics.median(times),
            "min": min(times),
            "all": times,
        }
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=3, help="start-ups to time per server")
    parser.add_argument("--seconds", type=float, default=5.0, help="length of the query run")
    parser.add_argument("--workers", type=int, default=8, help="concurrent query connections")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before querying")
    parser.add_argument("--serve-hello", type=int, metavar="PORT", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_hello:
        serve_hello(args.serve_hello)
        return

    key = "sk-bench-" + secrets.token_hex(8)
    with served_input() as video_url:

        def emulator_load(server: Server) -> dict[str, Any]:
            ids = put_tasks_in_flight(server, key, video_url, args.settle)
            return asyncio.run(hammer(server, ids, args.seconds, args.workers))

        def hello_load(server: Server) -> dict[str, Any]:
            ids = [f"task-{i}" for i in range(TASKS_IN_FLIGHT)]
            return asyncio.run(hammer(server, ids, args.seconds, args.workers))

        results = measure(
            [
                Subject("hello", hello_command, "/health", None, hello_load),
                Subject(
                    "emulator",
                    lambda port: emulator_command(port, key),
                    "/_emulator/health",
                    key,
                    emulator_load,
                ),
            ],
            args.runs,
        )
    emulator, hello = results["emulator"], results["hello"]

    ratios = {
        "startup": emulator["startup_seconds"]["median"] / hello["startup_seconds"]["median"],
        "queries_per_second": emulator["queries_per_second"] / hello["queries_per_second"],
        "server_cpu_per_query": emulator["server_cpu_ms_per_query"]
        / hello["server_cpu_ms_per_query"],
    }
    report = {
        "bench": "emulator",
        "when": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "settings": {
            "runs": args.runs,
            "seconds": args.seconds,
            "workers": args.workers,
            "tasks_in_flight": TASKS_IN_FLIGHT,
        },
        "emulator": emulator,
        "hello_world": hello,
        "ratio_emulator_to_hello": ratios,
    }
    from _common import write_results

    out = write_results("bench_emulator", report)
    print_table(emulator, hello, ratios)
    print(f"\nwritten: {out}")


def print_table(emulator: dict[str, Any], hello: dict[str, Any], ratios: dict[str, float]) -> None:
    rows = [
        (
            "start-up, median (s)",
            "startup_seconds",
            lambda r: f"{r['startup_seconds']['median']:.2f}",
        ),
        ("status queries / s", "queries_per_second", lambda r: f"{r['queries_per_second']:.0f}"),
        (
            "server CPU / query (ms)",
            "server_cpu_ms_per_query",
            lambda r: f"{r['server_cpu_ms_per_query']:.2f}",
        ),
        ("p50 latency (ms)", "p50_ms", lambda r: f"{r['p50_ms']:.1f}"),
        ("p99 latency (ms)", "p99_ms", lambda r: f"{r['p99_ms']:.1f}"),
        ("non-200 / errors", "", lambda r: f"{r['non_200']} / {r['errors']}"),
    ]
    print(f"{'':24}{'emulator':>12}{'hello world':>14}{'ratio':>8}")
    for label, key, show in rows:
        ratio = {
            "startup_seconds": "startup",
            "queries_per_second": "queries_per_second",
            "server_cpu_ms_per_query": "server_cpu_per_query",
        }.get(key)
        tail = f"{ratios[ratio]:>8.2f}" if ratio else ""
        print(f"{label:24}{show(emulator):>12}{show(hello):>14}{tail}")


if __name__ == "__main__":
    main()
