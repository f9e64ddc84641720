"""The unmodified convex client's `onPaginatedUpdate_experimental` and `loadMore` against a live
`turnstile serve` (docs/reference/functions.md, "Paginated lists"): events inserted into and
cancelled from the middle of its pages, a page grown until the client splits it, and a server
killed and started again in between, after which the client's journals keep each page's range.
At no update does the client show an event twice, out of order, or miss one it had shown."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from tests.interop import test_convex_client as live
from tests.interop.test_convex_client import ADMIN_KEY, HERE, Server, free_port, restart

#: The same condition: node and `npm ci --prefix tests/interop`.
pytestmark = live.pytestmark


def day_of(name: str) -> float:
    """d3 -> 3, d3b -> 3.5: the order the events' dates give."""
    return float(name[1:].rstrip("b")) + (0.5 if name.endswith("b") else 0)


def test_paginated_pages_stay_gapless_while_rows_come_and_go_and_across_a_restart(
    tmp_path: Path,
) -> None:
    port = free_port()
    server = Server(tmp_path / "data", port)
    node = subprocess.Popen(
        ["node", str(HERE / "paginate.mjs"), server.url, ADMIN_KEY],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    steps: dict[str, Any] = {}
    updates: list[dict[str, Any]] = []
    try:
        assert node.stdout is not None and node.stdin is not None
        for line in node.stdout:
            if not line.startswith("{"):
                continue  # the convex client's own log lines
            step = json.loads(line)
            if step["step"] == "update":
                updates.append(step)
                continue
            steps[step["step"]] = step
            if step["step"] == "restart-me":
                server.process.kill()  # SIGKILL: the client must reconnect by itself
                server.process.communicate(timeout=30)
                server = restart(tmp_path / "data", port)
                node.stdin.write("go\n")
                node.stdin.flush()
            if step["step"] in ("done", "error"):
                break
        _, errors = node.communicate(timeout=60)
    finally:
        if node.poll() is None:
            node.kill()
            node.communicate()
        assert server.stop() == 0
    assert "error" not in steps, (steps, errors)
    assert steps["first"]["names"] == ["d1", "d3"]
    assert steps["loaded"]["names"] == ["d1", "d3", "d5", "d7", "d9"]
    assert steps["changed"]["names"] == ["d1", "d2", "d4", "d5", "d6", "d7", "d9", "d10"]
    assert steps["after"]["names"] == ["d0", "d1", "d2", "d3b", "d4", "d5", "d7", "d9", "d10"]
    final = ["d0", "d1", "d2", "d4", "d4b", "d5", "d5b", "d7", "d9", "d10"]
    assert steps["split"]["names"] == final
    assert steps["done"]["whole"] == final  # the whole list, asked for without paginationOpts
    for update in updates:
        shown = update["names"]
        assert len(shown) == len(set(shown)), f"an event shown twice: {shown}"
        assert shown == sorted(shown, key=day_of), f"out of order: {shown}"
        if update["status"] == "Exhausted":
            # Every page loaded: every event that exists at that moment is shown. Events
            # come only from the script, so the shown list must be one the script made.
            assert set(shown) >= {"d1", "d5", "d7", "d9"}, f"an event went missing: {shown}"
    added = steps["done"]["added"]
    pinned_on_reconnect = [a for a in added if a["journal"] is not None]
    assert len(pinned_on_reconnect) >= 3, added  # each page came back with its journal
    splits = [a for a in added if a["opts"] and a["opts"].get("endCursor")]
    assert len(splits) >= 2, added  # the grown page was replaced by its two halves
