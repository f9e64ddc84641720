"""`turnstile loadtest`: simulated users over real WebSockets against a server on this machine.

    config = LoadConfig(url="http://127.0.0.1:3210", admin_key=KEY, jwt_secret=SECRET,
                        scenario="mixed", duration=10)
    result = trio.run(run_loadtest, config)      # bounded; raises SetupFailed if it cannot start
    report = build_report(result)                # JSON-able; report["passed"]

See docs/loadtest.md for the scenarios and exactly what each figure measures.
"""

from tools.loadtest.command import add_parser, main
from tools.loadtest.config import ConfigError, LoadConfig, check_loopback
from tools.loadtest.html import render_html
from tools.loadtest.recorder import Recorder, Sent
from tools.loadtest.report import build_report, summary_text, write_report
from tools.loadtest.runner import RunResult, SetupFailed, run_loadtest

__all__ = [
    "ConfigError",
    "LoadConfig",
    "Recorder",
    "RunResult",
    "Sent",
    "SetupFailed",
    "add_parser",
    "build_report",
    "check_loopback",
    "main",
    "render_html",
    "run_loadtest",
    "summary_text",
    "write_report",
]
