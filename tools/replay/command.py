"""The `turnstile replay` sub-command: its options and what each mode prints and returns.

Exit status: 0 when everything checks out (or the copy or export is complete), 1 when the
journal or its snapshots have problems (they are reported), 2 when the command cannot run as
asked (bad options, no journal, NEW_DIR not empty).
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, BinaryIO

from tools.apps import add_app_option, load_app_modules
from tools.replay.export import ExportFilter, export_events
from tools.replay.pitr import RecoveryRefused, copy_until
from tools.replay.progress import Progress
from tools.replay.report import (
    json_document,
    render_copy,
    render_export,
    render_stats,
    render_verify,
)
from tools.replay.source import NoJournal
from tools.replay.stats import journal_stats
from tools.replay.times import parse_time
from tools.replay.verify import verify

OK, PROBLEMS, USAGE = 0, 1, 2

DESCRIPTION = """\
The journal replay tool. Reads DATA_DIR only (read-only SQLite), except --into, which writes a
new data dir. Modes (one of):
  --verify                 rebuild everything from the journal and check it, and the snapshots
                           (with --app MODULE ...: the apps the server was serving)
  --into NEW_DIR           point-in-time copy (with --until-seq N or --until-time T)
  --stats                  events per type and stream kind, bytes, rate, biggest streams
  --export FILE.jsonl      events as JSON lines (filters; --follow tails a live journal)
Exit status: 0 all is well, 1 problems found (reported), 2 cannot run as asked."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.description = DESCRIPTION
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.add_argument("data_dir", type=Path, metavar="DATA_DIR")
    mode = parser.add_mutually_exclusive_group(required=True)
    mode.add_argument("--verify", action="store_true", help="check the journal and snapshots")
    mode.add_argument("--into", type=Path, metavar="NEW_DIR", help="point-in-time copy target")
    mode.add_argument("--stats", action="store_true", help="journal statistics")
    mode.add_argument("--export", metavar="FILE.jsonl", help="export events ('-': stdout)")
    until = parser.add_mutually_exclusive_group()
    until.add_argument("--until-seq", type=int, metavar="N", help="--into: copy seq <= N")
    until.add_argument(
        "--until-time", type=_time, metavar="T", help="--into: copy what was decided by T"
    )
    parser.add_argument("--stream", action="append", default=[], help="--export: repeatable")
    parser.add_argument("--type", action="append", default=[], help="--export: repeatable")
    parser.add_argument("--since", type=_time, metavar="T", help="--export: at >= T")
    parser.add_argument("--until", type=_time, metavar="T", help="--export: at <= T")
    parser.add_argument("--follow", action="store_true", help="--export: tail a live journal")
    parser.add_argument(
        "--follow-seconds", type=float, metavar="S", help="--follow: stop after S seconds"
    )
    parser.add_argument("--top", type=int, default=10, help="--stats: biggest streams shown")
    parser.add_argument("--bucket-minutes", type=int, metavar="M", help="--stats: rate buckets")
    parser.add_argument("--json", action="store_true", help="one JSON document on stdout")
    add_app_option(parser)
    parser.set_defaults(replay_parser=parser)


def _time(text: str) -> int:
    try:
        return parse_time(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    parser: argparse.ArgumentParser = args.replay_parser
    _check_options(parser, args)
    try:
        if args.verify:
            return _verify(args)
        if args.into is not None:
            return _copy(args)
        if args.stats:
            return _stats(args)
        return _export(args)
    except (NoJournal, RecoveryRefused) as exc:
        print(f"turnstile replay: {exc}", file=sys.stderr)
        return USAGE


def _check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if (args.until_seq is not None or args.until_time is not None) and args.into is None:
        parser.error("--until-seq and --until-time go with --into NEW_DIR")
    export_only = {
        "--stream": args.stream,
        "--type": args.type,
        "--since": args.since is not None,
        "--until": args.until is not None,
        "--follow": args.follow,
    }
    if args.export is None:
        given = [name for name, value in export_only.items() if value]
        if given:
            parser.error(f"{', '.join(given)} go(es) with --export")
    if args.follow_seconds is not None and not args.follow:
        parser.error("--follow-seconds goes with --follow")
    if args.export == "-" and args.json:
        parser.error("--export - writes the events to stdout; --json cannot share it")
    if args.top < 0 or (args.bucket_minutes is not None and args.bucket_minutes < 1):
        parser.error("--top must be >= 0 and --bucket-minutes >= 1")


def _progress(label: str, total: int) -> Progress:
    return Progress(label, total)  # drawn only if stderr is a terminal


def _emit(args: argparse.Namespace, document: dict[str, Any], text: str) -> None:
    sys.stdout.write(json_document(document) if args.json else text)
    sys.stdout.flush()


def _verify(args: argparse.Namespace) -> int:
    modules = load_app_modules(args.replay_parser, args.apps)
    report = verify(args.data_dir, progress=_progress, modules=modules)
    _emit(args, report.as_json(), render_verify(report))
    return OK if report.ok else PROBLEMS


def _copy(args: argparse.Namespace) -> int:
    modules = load_app_modules(args.replay_parser, args.apps)
    copy = copy_until(
        args.data_dir,
        args.into,
        until_seq=args.until_seq,
        until_ms=args.until_time,
        progress=_progress,
        modules=modules,
    )
    _emit(args, copy.as_json(), render_copy(copy))
    return OK if copy.ok else PROBLEMS


def _stats(args: argparse.Namespace) -> int:
    stats = journal_stats(args.data_dir, top=args.top, bucket_minutes=args.bucket_minutes)
    _emit(args, stats.as_json(), render_stats(stats))
    return OK


def _export(args: argparse.Namespace) -> int:
    load_app_modules(args.replay_parser, args.apps)  # their event types (and upcasters)
    where = ExportFilter(
        streams=tuple(args.stream),
        types=tuple(args.type),
        since_ms=args.since,
        until_ms=args.until,
    )
    stop = threading.Event()

    def following(seq: int) -> None:
        print(f"following the journal from seq {seq} (Ctrl-C stops)", file=sys.stderr, flush=True)

    with _destination(args.export) as out, _stopping_on_signals(stop, enabled=args.follow):
        summary = export_events(
            args.data_dir,
            out,
            where,
            follow=args.follow,
            follow_seconds=args.follow_seconds,
            stop=stop,
            progress=_progress,
            on_follow=following,
        )
    destination = "stdout" if args.export == "-" else args.export
    text = render_export(summary, destination)
    if args.json:
        _emit(args, summary.as_json(), text)
    else:
        # With the events on stdout, the summary goes to stderr.
        print(text, end="", file=sys.stderr if args.export == "-" else sys.stdout)
    return OK if summary.ok else PROBLEMS


@contextmanager
def _destination(name: str) -> Iterator[BinaryIO]:
    if name == "-":
        yield sys.stdout.buffer
        return
    with open(name, "wb") as out:
        yield out


@contextmanager
def _stopping_on_signals(stop: threading.Event, *, enabled: bool) -> Iterator[None]:
    """SIGINT and SIGTERM set `stop` (the follow loop ends cleanly) while the block runs."""
    if not enabled:
        yield
        return
    handler: Callable[[int, Any], None] = lambda signum, frame: stop.set()  # noqa: E731
    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
