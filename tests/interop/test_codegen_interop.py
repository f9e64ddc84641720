"""The `api` that `turnstile codegen` writes, used from TypeScript as a frontend uses it.

`turnstile codegen` writes `api.js`/`api.d.ts` (the built-in app and tests.interop.codegen_app)
into a scratch directory beside this file (so that `convex` resolves from node_modules here);
`tsc --strict` must accept codegen_check.ts and refuse exactly the marked lines of
codegen_wrong.ts; the emitted codegen_check.js then runs against a live `turnstile serve`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

HERE = Path(__file__).parent
REPO = HERE.parent.parent
TSC = HERE / "node_modules" / ".bin" / "tsc"
APP = "tests.interop.codegen_app"
JWT_SECRET = "codegen-interop-jwt-secret-of-enough-length"
SOURCES = ("codegen_check.ts", "codegen_wrong.ts", "codegen_env.d.ts")
COMPILER_OPTIONS = {
    "strict": True,
    "target": "ES2022",
    "module": "NodeNext",
    "moduleResolution": "NodeNext",
    "lib": ["ES2022", "DOM"],
    "types": [],
    "skipLibCheck": True,
    "noEmit": True,
}

pytestmark = pytest.mark.skipif(
    shutil.which("node") is None or not TSC.exists(),
    reason="needs node and `npm ci --prefix tests/interop` (./dev test does both)",
)


def run(command: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command,
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )


@pytest.fixture
def project() -> Iterator[Path]:
    """A scratch TypeScript project beside this file: the sources, `_generated/` from
    `turnstile codegen`, and a tsconfig per program."""
    root = Path(tempfile.mkdtemp(prefix=".codegen-", dir=HERE))
    try:
        for name in SOURCES:
            shutil.copy(HERE / name, root / name)
        generated = str(root / "_generated")
        done = run([sys.executable, "-m", "tools.cli", "codegen", "--out", generated, "--app", APP])
        assert done.returncode == 0, done.stderr
        for program in ("check", "wrong"):
            config = {
                "compilerOptions": COMPILER_OPTIONS,
                "files": [f"codegen_{program}.ts", "codegen_env.d.ts"],
            }
            (root / f"tsconfig.{program}.json").write_text(json.dumps(config))
        yield root
    finally:
        shutil.rmtree(root)


def tsc(project: Path, program: str) -> subprocess.CompletedProcess[str]:
    return run([str(TSC), "-p", str(project / f"tsconfig.{program}.json"), "--pretty", "false"])


def test_the_generated_api_type_checks_refuses_wrong_calls_and_runs(project: Path) -> None:
    checked = tsc(project, "check")
    assert checked.returncode == 0, checked.stdout

    refused = tsc(project, "wrong")
    assert refused.returncode != 0
    wrong = (project / "codegen_wrong.ts").read_text().splitlines()
    marked = {number for number, line in enumerate(wrong, 1) if line.endswith("// wrong")}
    reported = {
        int(found.group(1))
        for found in re.finditer(r"codegen_wrong\.ts\((\d+),\d+\): error", refused.stdout)
    }
    assert len(marked) == 10
    assert reported == marked, refused.stdout

    out = project / "out"
    config = str(project / "tsconfig.check.json")
    emitted = run([str(TSC), "-p", config, "--noEmit", "false", "--outDir", str(out)])
    assert emitted.returncode == 0, emitted.stdout
    shutil.copytree(project / "_generated", out / "_generated")
    seen = run_against_a_server(project, out / "codegen_check.js")
    assert seen["eventId"].startswith("ev_")
    assert seen["totalTickets"] == 3
    assert seen["eventName"] == "Codegen gig"
    assert seen["liveRemaining"] == 3  # the subscription through api.events.getEventAvailability
    assert seen["noteId"].startswith("nt_")
    assert seen["viaAlias"].startswith("nt_")  # board:add, the alias
    assert seen["notes"] == 0  # notes.v2:count, as api["notes.v2"].count
    assert seen["noNote"] is None
    assert seen["before"] == {"color": "red", "pinned": False}
    assert seen["pinnedResult"] is None
    assert seen["pinned"] is True
    assert seen["tags"] == ["a", "b"]


def run_against_a_server(project: Path, program: Path) -> dict[str, Any]:
    from engine.server.auth import mint_token

    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "tools.cli", "serve", "--port", "0", "--app", APP),
            *("--data-dir", str(project / "data"), "--admin-key", "codegen-admin-key"),
            *("--jwt-secret", JWT_SECRET),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert server.stdout is not None
        for line in server.stdout:
            if line.startswith("listening on "):
                url = line.split()[-1].strip()
                break
        else:
            raise AssertionError(f"server did not start: {server.communicate(timeout=30)[1]}")
        token = mint_token(JWT_SECRET, "staff", "org_codegen", ["events:manage"], 600)
        done = run(["node", str(program), url, token])
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    assert server.returncode == 0
    lines = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert done.returncode == 0 and len(lines) == 1, (done.stdout, done.stderr)
    seen: dict[str, Any] = lines[0]
    return seen
