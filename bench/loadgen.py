"""wrk as the load driver, and the child processes of a benchmark run.

Why wrk: it is a compiled, event-driven client that holds hundreds of connections on
one core with little CPU of its own, and its Lua hooks let every request carry another
user's real token and another real task id (`bench/wrk/todo.lua`). A Python load
generator on this 2-core machine would take the CPU the servers need.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
LUA = BENCH_DIR / "wrk" / "todo.lua"
HOST = "127.0.0.1"


class BenchError(RuntimeError):
    """Something the person running the benchmark must fix."""


def ensure_wrk() -> str:
    """Path to wrk; installs Debian's package when root with apt-get, else explains how."""
    found = shutil.which("wrk")
    if found:
        return found
    how = "apt-get update && apt-get install -y wrk"
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print(f"wrk not found; installing it: {how}", flush=True)
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True)
        found = shutil.which("wrk")
    if not found:
        raise BenchError(f"wrk is required; install it with: {how} (Debian/Ubuntu)")
    return found


@dataclass
class WrkResult:
    """One wrk run, parsed from its `--latency` text output."""

    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int
    statuses: dict[str, int] = field(default_factory=dict)

    @property
    def errors(self) -> int:
        return self.non_2xx + self.socket_errors


_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _latency_ms(text: str, percentile: str) -> float:
    match = re.search(rf"^\s*{percentile}%\s+([\d.]+)(us|ms|s|m)\s*$", text, re.MULTILINE)
    if not match:
        raise BenchError(f"no {percentile}% latency in wrk output:\n{text}")
    return float(match.group(1)) * _UNITS_MS[match.group(2)]


def parse_wrk(text: str) -> WrkResult:
    """Requests/s, p50/p99, non-2xx and socket errors (and status counts, when asked for)."""
    rps = re.search(r"^Requests/sec:\s+([\d.]+)", text, re.MULTILINE)
    requests = re.search(r"^\s*(\d+) requests in", text, re.MULTILINE)
    if not rps or not requests:
        raise BenchError(f"unexpected wrk output:\n{text}")
    non_2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", text)
    sockets = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    statuses = re.search(r"^BENCH_STATUS (\{.*\})$", text, re.MULTILINE)
    return WrkResult(
        rps=float(rps.group(1)),
        p50_ms=_latency_ms(text, "50"),
        p99_ms=_latency_ms(text, "99"),
        requests=int(requests.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(n) for n in sockets.groups()) if sockets else 0,
        statuses=json.loads(statuses.group(1)) if statuses else {},
    )


class Processes:
    """Starts and stops everything the benchmark runs, and remembers it for cleanup."""

    def __init__(self, wrk: str, users_file: Path, work_dir: Path) -> None:
        self.wrk = wrk
        self.users_file = users_file
        self.work_dir = work_dir
        self.children: list[subprocess.Popen[bytes]] = []

    def wrk_run(
        self,
        port: int,
        request: dict[str, str],
        connections: int,
        seconds: float,
        *,
        count_status: bool = False,
    ) -> WrkResult:
        """One wrk run against 127.0.0.1:`port`; `request` is the wrk script's
        environment for the requests to send (`BENCH_METHOD`, `BENCH_PATH`, ...)."""
        threads = min(2, connections)
        env = {
            **os.environ,
            **request,
            "BENCH_USERS_FILE": str(self.users_file),
            "BENCH_THREADS": str(threads),
            "BENCH_COUNT_STATUS": "1" if count_status else "0",
        }
        command = [
            self.wrk,
            f"-t{threads}",
            f"-c{connections}",
            f"-d{max(1, round(seconds))}s",
            "--latency",
            # Long enough that a slow answer (a 503 after the pool timeout) is seen as
            # what it is rather than as a client-side timeout.
            "--timeout",
            "15s",
            "-s",
            str(LUA),
            f"http://{HOST}:{port}",
        ]
        process = self.start(command, env=env, stdout=subprocess.PIPE)
        try:
            out, _ = process.communicate(timeout=seconds + 60)
        finally:
            self.stop(process)
        if process.returncode != 0:
            raise BenchError(f"wrk failed ({process.returncode}):\n{out.decode()}")
        return parse_wrk(out.decode())

    def start(
        self,
        command: list[str],
        *,
        env: dict[str, str],
        stdout: Any = None,
        log: Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a child in its own session (Ctrl-C reaches only us; we stop it in order)."""
        handle = log.open("wb") if log else None
        try:
            process = subprocess.Popen(
                command,
                env=env,
                cwd=self.work_dir,
                stdout=stdout if stdout is not None else handle,
                stderr=subprocess.STDOUT if handle or stdout else None,
                start_new_session=True,
            )
        finally:
            if handle:
                handle.close()
        self.children.append(process)
        return process

    def stop(self, process: subprocess.Popen[bytes], grace: float = 25.0) -> None:
        """SIGTERM, wait, then SIGKILL its process group (which only it and its children share)."""
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait(timeout=5)
        if process in self.children:
            self.children.remove(process)

    def stop_all(self) -> None:
        """Stop every child still running, newest first (wrk before the servers it loads)."""
        for process in reversed(list(self.children)):
            self.stop(process)
