"""File storage benchmark: `python -m lab.storage_bench [--quick] [--write-doc]`.

What an upload and a download through `turnstile serve`'s storage routes cost beside copying
the same bytes on the same disk, in one run so that the ratios are of one machine in one state.

- The server: `open_server` in this process over a fresh data dir in `--dir` (a temporary
  directory under it), `synchronous=FULL`, the default limits; the engine's disk work and the
  storage routes' reads and writes in worker threads, as served.
- The client: `http.client` in a child process (`--child`: so its CPU and its socket reads are
  not the server's, as a browser's are not), one keep-alive connection, admin key (the server
  closes it after an upload above 256 KiB, whose body h11 never reads; it is opened again
  before the next timed request, as a client's pool would hold one ready). An upload is the
  POST of the file's bytes to a fresh upload URL (asked for before the clock starts), timed
  from the first byte sent to the 200 `{"storageId"}`, which comes only once the bytes are
  fsynced, renamed, the directory fsynced and the record committed (fsync) in the journal. A
  download is the GET of the file, timed to its last byte.
- The baselines, on the same disk (a sibling directory of the data dir), the same sizes and
  counts: a raw copy (`shutil.copyfile` of a source file in the page cache to a new file), and
  a durable raw copy (the same, then fsync of the file and of its directory: the least a
  durable upload must do).
- For each size (1 MiB and 20 MiB by default), `count` files per round: uploads, downloads and
  copies take turns per file; a round's figure for a path is its total bytes over its total
  time, MiB/s (2**20 bytes). `rounds` rounds (the sizes taking turns); reported: the median
  of the rounds' MiB/s per path, and of the rounds' ratios (with their lowest and highest).

Nothing here asserts on time. `--write-doc` writes the run's figures as the "## File storage"
section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import orjson
import trio

from engine import EngineConfig
from engine.server import Authenticator, open_server
from lab.figures import run_and_report

SECTION = "## File storage"
COMMAND = "python -m lab.storage_bench --write-doc"
ADMIN_KEY = "storage-bench-admin-key"
JWT_SECRET = "storage-bench-jwt-secret-long-enough-for-hs256"
MIB = 1024 * 1024
PATHS = ("upload", "download", "raw copy", "durable raw copy")


@attrs.frozen(kw_only=True)
class Sizes:
    #: (file size in bytes, files of that size per round)
    files: tuple[tuple[int, int], ...]
    rounds: int = 1


FULL = Sizes(files=((1 * MIB, 20), (20 * MIB, 4)), rounds=7)
QUICK = Sizes(files=((64 * 1024, 3), (1 * MIB, 2)))
#: (label, numerator path, denominator path) of each ratio reported.
RATIOS = (
    ("upload vs durable raw copy", "upload", "durable raw copy"),
    ("download vs raw copy", "download", "raw copy"),
    ("upload vs raw copy", "upload", "raw copy"),
)


class Client:
    """One keep-alive HTTP connection to the server (blocking; run it in a worker thread)."""

    def __init__(self, port: int) -> None:
        self.connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)

    def call(self, kind: str, path: str, args: dict[str, Any]) -> Any:
        body = orjson.dumps({"path": path, "args": [args], "format": "convex_encoded_json"})
        headers = {"Content-Type": "application/json", "Authorization": f"Convex {ADMIN_KEY}"}
        self.connection.request("POST", f"/api/{kind}", body, headers)
        reply = self.connection.getresponse()
        answer = orjson.loads(reply.read())
        if reply.status != 200:
            raise RuntimeError(f"{path} answered {reply.status}: {answer}")
        return answer["value"]

    def upload(self, target: str, data: bytes) -> tuple[str, float]:
        """POST `data` to the upload URL's path; (storage id, seconds to the 200)."""
        started = time.perf_counter()
        self.connection.request("POST", target, data, {"Content-Type": "image/png"})
        reply = self.connection.getresponse()
        answer = orjson.loads(reply.read())
        seconds = time.perf_counter() - started
        if reply.status != 200:
            raise RuntimeError(f"upload answered {reply.status}: {answer}")
        storage_id: str = answer["storageId"]
        return storage_id, seconds

    def download(self, storage_id: str, size: int) -> float:
        if self.connection.sock is None:  # the server closed it after a large upload
            self.connection.connect()
        started = time.perf_counter()
        self.connection.request("GET", f"/api/storage/{storage_id}")
        reply = self.connection.getresponse()
        received = len(reply.read())
        seconds = time.perf_counter() - started
        if reply.status != 200 or received != size:
            raise RuntimeError(f"download answered {reply.status} with {received} bytes")
        return seconds

    def close(self) -> None:
        self.connection.close()


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def raw_copy(source: Path, target: Path, *, durable: bool) -> float:
    started = time.perf_counter()
    shutil.copyfile(source, target)
    if durable:
        _fsync(target)
        _fsync(target.parent)
    return time.perf_counter() - started


def _one_size(client: Client, work: Path, size: int, count: int) -> dict[str, float]:
    """Seconds of each path over `count` files of `size` bytes (blocking)."""
    totals = dict.fromkeys(PATHS, 0.0)
    copies = work / f"copies-{size}"
    copies.mkdir()
    for n in range(count):
        data = os.urandom(size)
        source = work / f"source-{size}-{n}"
        source.write_bytes(data)
        url = client.call("mutation", "storage:generateUploadUrl", {})
        target = url.partition("://")[2].partition("/")[2]
        storage_id, seconds = client.upload("/" + target, data)
        totals["upload"] += seconds
        totals["download"] += client.download(storage_id, size)
        totals["raw copy"] += raw_copy(source, copies / f"plain-{n}", durable=False)
        totals["durable raw copy"] += raw_copy(source, copies / f"durable-{n}", durable=True)
        source.unlink()
    return totals


def measure(sizes: Sizes, directory: Path | None = None) -> dict[str, Any]:
    """Run every size `rounds` times; {"sizes": [{size, count, rounds: [{seconds: {path: s},
    mib_per_s: {path: x}}]}]}."""
    with tempfile.TemporaryDirectory(prefix="storage-bench-", dir=directory) as tmp:
        work = Path(tmp)
        return trio.run(_measure, sizes, work)


async def _measure(sizes: Sizes, work: Path) -> dict[str, Any]:
    results: list[dict[str, Any]] = [
        {"size": size, "count": count, "rounds": []} for size, count in sizes.files
    ]
    async with open_server(
        work / "data",
        authenticator=Authenticator(ADMIN_KEY, JWT_SECRET),
        engine_config=EngineConfig(run_jobs=False, snapshot_every=0),
    ) as server:
        for number in range(sizes.rounds):
            for entry in results:
                size, count = entry["size"], entry["count"]
                round_dir = work / f"round-{number}"
                round_dir.mkdir(exist_ok=True)
                seconds = await _in_child(server.port, round_dir, size, count)
                total = size * count / MIB
                entry["rounds"].append(
                    {
                        "seconds": seconds,
                        "mib_per_s": {path: total / s for path, s in seconds.items()},
                    }
                )
            shutil.rmtree(work / f"round-{number}")
    return {"sizes": results}


async def _in_child(port: int, work: Path, size: int, count: int) -> dict[str, float]:
    """`_one_size` in a child process (`--child`), so the client's CPU and its reads of the
    socket are not the server's: its totals."""
    done = await trio.run_process(
        [
            sys.executable,
            "-m",
            "lab.storage_bench",
            "--child",
            str(port),
            str(work),
            str(size),
            str(count),
        ],
        capture_stdout=True,
    )
    totals: dict[str, float] = json.loads(done.stdout)
    return totals


def _child(port: int, work: Path, size: int, count: int) -> None:
    client = Client(port)
    try:
        print(json.dumps(_one_size(client, work, size, count)))
    finally:
        client.close()


def _size_label(size: int) -> str:
    return f"{size // MIB} MiB" if size % MIB == 0 else f"{size // 1024} KiB"


def report(result: dict[str, Any]) -> str:
    """The table: per size, the median MiB/s of each path over the rounds, and each ratio's
    median over the rounds with its lowest and highest."""
    lines = [
        "| file size | files x rounds | upload MiB/s | download MiB/s | raw copy MiB/s |"
        " durable raw copy MiB/s | "
        + " | ".join(f"{label} (lowest-highest)" for label, _, _ in RATIOS)
        + " |",
        "| --- | --- | --- | --- | --- | --- |" + " --- |" * len(RATIOS),
    ]
    for entry in result["sizes"]:
        rounds = [r["mib_per_s"] for r in entry["rounds"]]
        rate = {path: statistics.median(r[path] for r in rounds) for path in PATHS}
        cells = []
        for _, top, bottom in RATIOS:
            ratios = [r[top] / r[bottom] for r in rounds]
            cells.append(f"{statistics.median(ratios):.2f}x ({min(ratios):.2f}-{max(ratios):.2f})")
        lines.append(
            f"| {_size_label(entry['size'])} | {entry['count']} x {len(rounds)} |"
            f" {rate['upload']:,.0f} | {rate['download']:,.0f} | {rate['raw copy']:,.0f} |"
            f" {rate['durable raw copy']:,.0f} | " + " | ".join(cells) + " |"
        )
    return "\n".join(lines)


#: What the section says it measures, above the figures.
ABOUT = (
    "Uploads and downloads through the storage routes of an in-process `turnstile"
    " serve` (docs/storage.md), beside copying the same bytes on the same disk"
    " (`lab/storage_bench.py` says exactly what is timed). An upload is durable when"
    " answered: the file and its directory fsynced, its record committed in the"
    " journal (fsync); the durable raw copy fsyncs the copy and its directory, the raw"
    " copy does not. A download goes from the file to the socket by `sendfile` in a"
    " worker thread; the client is `http.client` in a child process, on one keep-alive"
    " connection over loopback. Each file is uploaded, downloaded and copied both ways"
    " in turn, so a change in the machine's load touches every column alike."
)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the data dir and copies go (default: TMPDIR)"
    )
    parser.add_argument("--quick", action="store_true", help="small files: a smoke test")
    parser.add_argument("--write-doc", action="store_true", help="write docs/benchmarks.md")
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:  # the client's side of one size's round (`_in_child`)
        port, work, size, count = args.child
        _child(int(port), Path(work), int(size), int(count))
        return 0
    sizes = QUICK if args.quick else FULL
    return run_and_report(
        SECTION,
        command=COMMAND,
        about=ABOUT,
        quick=args.quick,
        write_doc=args.write_doc,
        run=lambda: report(measure(sizes, args.dir)),
    )


if __name__ == "__main__":
    sys.exit(main())
