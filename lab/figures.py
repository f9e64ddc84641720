"""What every benchmark and harness of the lab reports its figures with, written once.

- `percentile(values, p)`: the nearest-rank percentile (one definition for every table);
- `machine()`: what the figures were measured on (CPUs, software, commit, load), a dict that
  is printed, written into docs and dumped to JSON as it is; `machine_line(info)` says it on
  one line, `run_lines(info, ...)` as the list that opens a section;
- `write_section(heading, text)`: writes one benchmark's section of docs/benchmarks.md and keeps
  every other benchmark's section byte for byte (`replace_section` does it on a string);
- `instructions(args)`: machine instructions of `python -m ARGS` under cachegrind, its own
  process and its child processes apart.

The page is a sequence of sections, each from its heading line up to the next level-1 or
level-2 heading; a benchmark owns one section (the engine benchmark owns the page's title and the
"## What each line measures" section that follows it).
"""

from __future__ import annotations

import datetime as dt
import math
import os
import platform
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
#: The page every benchmark writes its section of.
BENCHMARKS_DOC = REPO / "docs" / "benchmarks.md"


def process_times(pid: int | None) -> tuple[float, float]:
    """CPU seconds of process `pid` so far, user + system and user alone ((0.0, 0.0) if
    unknown or not Linux)."""
    if pid is None:
        return 0.0, 0.0
    tick = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    try:
        stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, 0.0
    return (int(stat[11]) + int(stat[12])) / tick, int(stat[11]) / tick


def process_cpu(pid: int | None) -> float:
    """CPU seconds (user + system) of process `pid` so far (0.0 if unknown or not Linux)."""
    return process_times(pid)[0]


def peak_rss_mib(pid: int | None) -> float:
    """The peak resident set of process `pid` so far, MiB (0.0 if unknown or not Linux)."""
    if pid is None:
        return 0.0
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def writer_pid(engine: Any) -> int | None:
    """The pid of `engine`'s journal writer process, if it has one running."""
    appender = getattr(engine, "_appender", None)
    return None if appender is None else appender.pid


def server_cpu(engine: Any) -> float:
    """CPU seconds so far of this process and of `engine`'s journal writer process (a child:
    `time.process_time` alone leaves it out)."""
    return time.process_time() + process_cpu(writer_pid(engine))


def instructions(args: Sequence[str], *, children: bool = True) -> tuple[int, int]:
    """User-space instructions of `python -m ARGS` (run from the repository) under
    `valgrind --tool=cachegrind --cache-sim=no`: (its own process, its child processes
    together; those run natively and count 0 without `children`). Deterministic where timings
    are not; needs valgrind."""
    if shutil.which("valgrind") is None:
        raise SystemExit("counting instructions needs valgrind (Debian's package `valgrind`)")
    done = subprocess.run(
        [
            "valgrind",
            "--tool=cachegrind",
            "--cache-sim=no",
            f"--trace-children={'yes' if children else 'no'}",
            "--cachegrind-out-file=/dev/null",
            sys.executable,
            "-m",
            *args,
        ],
        cwd=str(REPO),
        capture_output=True,
        text=True,
        check=True,
    )
    counts = re.findall(r"==(\d+)==\s+I\s+refs:\s+([\d,]+)", done.stderr)
    first = re.search(r"==(\d+)==", done.stderr)
    assert counts and first is not None, done.stderr[-2_000:]
    own = sum(int(n.replace(",", "")) for pid, n in counts if pid == first.group(1))
    return own, sum(int(n.replace(",", "")) for pid, n in counts if pid != first.group(1))


def percentile(values: Iterable[float], p: float) -> float:
    """The nearest-rank percentile `p` (0 <= p <= 100) of `values`, in any order: the smallest
    value that at least p % of the values are at or below (the value of rank ceil(p/100 * n)
    in ascending order, rank 1 for p = 0). NaN when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = min(len(ordered), max(1, math.ceil(p / 100 * len(ordered))))
    return ordered[rank - 1]


def _git(*args: str) -> str:
    try:
        done = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True)
    except OSError:
        return ""
    return done.stdout.rstrip("\n") if done.returncode == 0 else ""


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def machine() -> dict[str, Any]:
    """The machine and code the figures come from, read now: commit, uncommitted paths outside
    lab/ and docs/ (which a benchmark run does not measure), CPUs (and how many this process may
    use), CPU model, Python, SQLite, trio, platform, UTC date and the load average at the start.
    A benchmark adds `loadavg_end` (`os.getloadavg()`) when its run is over."""
    import trio

    dirty = [line[3:] for line in _git("status", "--porcelain").splitlines() if line[3:]]
    return {
        "commit": _git("rev-parse", "--short", "HEAD") or "unknown",
        "dirty": [p for p in dirty if not p.startswith(("lab/", "docs/"))],
        "cpus": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "sqlite": sqlite3.sqlite_version,
        "trio": trio.__version__,
        "platform": platform.platform(),
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "loadavg_start": os.getloadavg(),
    }


def machine_line(info: Mapping[str, Any]) -> str:
    """`info` (from `machine()`) on one line: CPUs, software, load average, commit."""
    load = f"load average {info['loadavg_start'][0]:.2f} at the start"
    if "loadavg_end" in info:
        load += f", {info['loadavg_end'][0]:.2f} at the end"
    dirty = info["dirty"]
    code = f"commit {info['commit']}" + (
        f" plus uncommitted changes to {', '.join(dirty)}" if dirty else ""
    )
    return (
        f"{info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}; "
        f"{info['python']}, SQLite {info['sqlite']}, trio {info['trio']}; {info['platform']}; "
        f"{load}; {code}"
    )


def run_lines(
    info: Mapping[str, Any],
    *,
    command: str,
    seconds: float,
    quick: bool,
    software: str | None = None,
) -> list[str]:
    """The list that opens a benchmark's section: the command, the date and length of the run,
    the machine (with its load average at the start and the end), the software (`software`, by
    default Python, SQLite and trio) and the code measured. `info` is from `machine()`, with
    `loadavg_end`."""
    dirty = info["dirty"]
    software = software or f"{info['python']}, SQLite {info['sqlite']}, trio {info['trio']}"
    return [
        f"- command: `{command}`"
        + (" (quick sizes: a smoke test, not a measurement)" if quick else ""),
        f"- date: {info['date']}; whole run {seconds:,.0f} s",
        f"- machine: {info['cpus']} CPUs ({info['cpus_usable']} usable), {info['cpu_model']}; "
        f"load average at start {info['loadavg_start'][0]:.2f}, at end "
        f"{info['loadavg_end'][0]:.2f}",
        f"- software: {software}; {info['platform']}",
        f"- code: commit {info['commit']}"
        + (f" plus uncommitted changes to {', '.join(dirty)}" if dirty else " (clean work tree)"),
    ]


def section_head(
    title: str, info: Mapping[str, Any], *, command: str, seconds: float, quick: bool
) -> list[str]:
    """The opening lines of a generated section: its heading, that it is generated by
    `command` (with `--quick` when it was), and `run_lines`."""
    run = command + (" --quick" if quick else "")
    return [
        title,
        "",
        f"Generated by `{command}`; do not edit by hand.",
        "",
        *run_lines(info, command=run, seconds=seconds, quick=quick),
        "",
    ]


def generated_section(
    title: str,
    info: Mapping[str, Any],
    *,
    command: str,
    seconds: float,
    quick: bool,
    about: str,
    text: str,
) -> str:
    """A whole generated section: `section_head`, the paragraph `about` (what is measured and
    how), then the measured `text`."""
    head = section_head(title, info, command=command, seconds=seconds, quick=quick)
    return "\n".join([*head, about, "", text, ""])


def run_and_report(
    title: str,
    *,
    command: str,
    about: str,
    quick: bool,
    write_doc: bool,
    run: Callable[[], str],
) -> int:
    """A benchmark's last step: `run()` measures and returns its figures' text, which is
    printed under the machine's line and, with `write_doc`, written as its generated section
    of docs/benchmarks.md (`generated_section`, `write_section`). The exit status: 0."""
    info = machine()
    started = time.monotonic()
    text = run()
    info["loadavg_end"] = os.getloadavg()
    print(machine_line(info))
    print(text)
    if write_doc:
        seconds = time.monotonic() - started
        section = generated_section(
            title, info, command=command, seconds=seconds, quick=quick, about=about, text=text
        )
        write_section(title, section)
    return 0


def _is_heading(line: str) -> bool:
    return line.startswith(("# ", "## "))


def replace_section(doc: str, heading: str, section: str, *, through: Iterable[str] = ()) -> str:
    """`doc` with the section under `heading` replaced by `section` (which begins with that
    heading line). The section runs from the line equal to `heading` up to the next level-1 or
    level-2 heading that is not in `through`. Without such a section, `section` is added: first
    if `heading` is a level-1 heading (the page's title), else last. Every other line of `doc`
    is kept as it was; sections are separated by one blank line, and the result ends in one
    newline."""
    lines = doc.split("\n")
    body = section.rstrip("\n").split("\n")
    kept = set(through)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        rest = doc.strip("\n")
        if not rest:
            return "\n".join(body) + "\n"
        if heading.startswith("# "):
            return "\n".join(body) + "\n\n" + rest + "\n"
        return rest + "\n\n" + "\n".join(body) + "\n"
    end = next(
        (
            i
            for i in range(start + 1, len(lines))
            if _is_heading(lines[i]) and lines[i].rstrip() not in kept
        ),
        len(lines),
    )
    before = "\n".join(lines[:start]).rstrip("\n")
    after = "\n".join(lines[end:]).rstrip("\n")
    out = (before + "\n\n" if before else "") + "\n".join(body)
    return out + ("\n\n" + after if after else "") + "\n"


def write_section(
    heading: str, section: str, *, through: Iterable[str] = (), path: Path = BENCHMARKS_DOC
) -> None:
    """Write `section` as the `heading` section of `path` (docs/benchmarks.md), keeping every
    other section as it was (`replace_section`); creates the file if there is none. Not atomic:
    a crash mid-write can leave the page cut short (it is regenerated by re-running)."""
    doc = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(replace_section(doc, heading, section, through=through))


__all__ = [
    "BENCHMARKS_DOC",
    "machine",
    "machine_line",
    "percentile",
    "replace_section",
    "run_lines",
    "write_section",
]
