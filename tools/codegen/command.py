"""The `turnstile codegen` sub-command: its options, what it writes and its exit status.

Exit status: 0 when both files are written, 1 when a function's types cannot be written as
TypeScript (the message names it; nothing is written), 2 when the command cannot run as asked
(bad options, an app that does not load, DIR not writable).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from domain.model import Module
from tools.codegen.typescript import CodegenError
from tools.codegen.writer import generate, write_api

OK, UNTYPED, USAGE = 0, 1, 2

DESCRIPTION = """Write DIR/api.js and DIR/api.d.ts shaped like Convex's convex/_generated/api, so
that a frontend's `import { api } from "../convex/_generated/api"` works against Turnstile
unchanged: `api.events.create` is the function reference of `events:create`, typed with its
args and result. The output depends on the functions served (the built-in app and each --app)
only, sorted, so it can be committed and diffed."""


def add_parser(commands: Any) -> argparse.ArgumentParser:
    """Add the `codegen` sub-command to `commands` (an argparse sub-parsers object); the
    caller adds `--app` (`tools.apps.add_app_option`) to the parser returned."""
    parser: argparse.ArgumentParser = commands.add_parser(
        "codegen",
        help="write api.js and api.d.ts for a frontend, as convex/_generated/api",
        description=DESCRIPTION,
    )
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        metavar="DIR",
        help="the directory to write into, e.g. convex/_generated (made if missing)",
    )
    return parser


def run(args: argparse.Namespace, modules: Sequence[Module]) -> int:
    """Write the files for `modules`, the apps `args.apps` loaded (`tools.app_option`
    .load_app_modules, which has refused an app that does not load)."""
    try:
        generated = generate(modules, app_paths=args.apps)
    except CodegenError as exc:
        print(f"turnstile codegen: {exc}", file=sys.stderr)
        return UNTYPED
    try:
        js, dts = write_api(args.out, generated)
    except OSError as exc:
        print(f"turnstile codegen: cannot write into {args.out}: {exc}", file=sys.stderr)
        return USAGE
    kinds = [function.kind for function in generated.functions]
    aliases = sum(function.alias_of is not None for function in generated.functions)
    print(
        f"wrote {js} and {dts}: {kinds.count('query')} queries, {kinds.count('mutation')}"
        f" mutations, {kinds.count('action')} actions ({aliases} of these references are"
        " aliases)"
    )
    return OK
