"""Where the API spends its time: py-spy samples it under load, summarised by package.

py-spy comes from PyPI through `uv run --with py-spy` (no project dependency), attaches to
the running server by pid (root, or ptrace allowed) and samples without pausing it.
The summary is a starting point; the raw file (`--format raw`, collapsed stacks) opens
in speedscope or flamegraph.pl for the whole picture.
"""

from __future__ import annotations

import os
import re
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

from loadgen import BenchError, Processes

#: Frames where a thread only waits (an idle worker of the thread pool): not work.
_IDLE_LEAVES = ("Condition.wait", "Queue.get", "select", "poll")


def profile(
    processes: Processes,
    api_pid: int,
    api_port: int,
    request: dict[str, str],
    name: str,
    seconds: int,
    out_dir: Path,
) -> dict[str, Any]:
    """py-spy samples the API (by pid) while wrk sends `request` at 32 connections.

    `--gil` keeps only the samples of the thread holding the GIL: with one process on a
    busy core that is where the CPU goes, whichever thread (event loop or thread-pool
    worker) spends it; waits for the database or the network drop out.
    """
    out = out_dir / f"profile-{name}.txt"
    command = [
        "uv", "run", "--no-project", "--with", "py-spy", "py-spy", "record",
        "--pid", str(api_pid), "--duration", str(seconds), "--rate", "250",
        "--format", "raw", "--nonblocking", "--gil", "--output", str(out),
    ]  # fmt: skip
    spy = processes.start(command, env=dict(os.environ), stdout=subprocess.DEVNULL)
    time.sleep(2)  # let py-spy attach, so the load covers its whole window
    processes.wrk_run(api_port, request, 32, seconds + 1)
    try:
        spy.wait(timeout=60)
    finally:
        processes.stop(spy)
    if not out.exists():
        raise BenchError("py-spy wrote nothing (is ptrace allowed here?)")
    return summarise_profile(out)


def frame_key(frame: str) -> tuple[str, str]:
    """`(function, package)` for a py-spy frame `function (path:line)`.

    py-spy prints paths relative to their sys.path entry, so the first component is
    the package (`fastapi/routing.py`) and a bare file name is a stdlib module.
    """
    match = re.match(r"(.*) \((.*?)(?::\d+)?\)$", frame)
    if not match:
        return frame, "?"
    function, path = match.groups()
    first = path.lstrip("/").split("/", 1)[0]
    if "site-packages/" in path:
        first = path.split("site-packages/", 1)[1].split("/", 1)[0]
    return function, first.removesuffix(".py")


def summarise_profile(path: Path, top: int = 15) -> dict[str, Any]:
    """Self time by package and by function, and inclusive time of every function.

    Samples of a thread-pool worker waiting for work are dropped: they are idle time
    that py-spy cannot always tell from work.
    """
    by_thread: Counter[str] = Counter()
    by_package: Counter[str] = Counter()
    by_function: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = [frame_key(frame) for frame in stack.split(";")]
        leaf_function, leaf_package = frames[-1]
        if leaf_function.endswith(_IDLE_LEAVES) and leaf_package in {"threading", "queue"}:
            continue
        total += count
        # The event loop runs in the main thread; anything rooted elsewhere is a
        # thread-pool worker (FastAPI runs plain `def` dependencies there).
        by_thread["worker threads" if frames[0][0] == "Thread._bootstrap" else "main"] += count
        by_package[leaf_package] += count
        by_function[f"{leaf_function} [{leaf_package}]"] += count
        for name in {f"{function} [{package}]" for function, package in frames}:
            inclusive[name] += count

    def share(counter: Counter[str], limit: int) -> list[tuple[str, float]]:
        return [(name, round(100 * n / max(total, 1), 1)) for name, n in counter.most_common(limit)]

    return {
        "samples": total,
        "threads": share(by_thread, 2),
        "self_by_package": share(by_package, top),
        "self_by_function": share(by_function, top),
        "inclusive": share(inclusive, 80),
        "file": str(path),
    }
