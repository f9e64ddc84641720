"""The server under chaos: `turnstile serve` as a subprocess on one fixed loopback port, which
the run SIGKILLs and restarts on the same port and data dir (so clients reconnect to the same
address by themselves).

Only the process this object started is ever signalled (by its pid); `close()` makes sure none
is left behind. The keys travel in the child's environment, never on its command line.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import trio

#: The repository root: `python -m tools.cli` runs from here.
REPO = Path(__file__).resolve().parents[2]
HOST = "127.0.0.1"
#: Seconds between two looks at /health while waiting for recovery.
HEALTH_POLL = 0.01
#: Seconds one /health request may take before it counts as "not yet".
HEALTH_REQUEST_TIMEOUT = 1.0


class ServerFailed(Exception):
    """The server did not come up (in time, or at all); the message says which, with the
    end of its log."""


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick), for the run to keep."""
    with socket.socket() as probe:
        probe.bind((HOST, 0))
        port: int = probe.getsockname()[1]
    return port


async def health_status(port: int) -> int | None:
    """The HTTP status of `GET /health`, or None if nothing answered in time."""
    request = f"GET /health HTTP/1.1\r\nHost: {HOST}:{port}\r\nConnection: close\r\n\r\n"
    with trio.move_on_after(HEALTH_REQUEST_TIMEOUT):
        try:
            stream = await trio.open_tcp_stream(HOST, port)
        except OSError:
            return None
        async with stream:
            try:
                await stream.send_all(request.encode())
                head = b""
                while b"\r\n" not in head:
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        return None
                    head += chunk
            except (OSError, trio.BrokenResourceError):
                return None
        parts = head.split(b" ", 2)
        if len(parts) < 2 or not parts[1].isdigit():
            return None
        return int(parts[1])
    return None


class ServerProcess:
    """`turnstile serve --host 127.0.0.1 --port PORT --data-dir DATA_DIR`, started, killed and
    restarted on demand. Its stdout and stderr go to `log_path` (appended, every life)."""

    def __init__(
        self,
        *,
        data_dir: Path,
        port: int,
        admin_key: str,
        jwt_secret: str,
        log_path: Path,
        health_limit: float = 60.0,
        stop_limit: float = 30.0,
    ) -> None:
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        #: Seconds a start may take to answer /health 200, and a clean stop to exit.
        self.health_limit = health_limit
        self.stop_limit = stop_limit
        self._env = {
            **os.environ,
            "PYTHONPATH": str(REPO),
            "TURNSTILE_ADMIN_KEY": admin_key,
            "TURNSTILE_JWT_SECRET": jwt_secret,
        }
        self._process: subprocess.Popen[bytes] | None = None
        #: How many times the server was started (the first start included).
        self.starts = 0

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        assert not self.running, "the server is already running"
        self.starts += 1
        with self.log_path.open("ab") as log:
            log.write(f"--- start {self.starts}\n".encode())
            log.flush()
            self._process = subprocess.Popen(
                [
                    sys.executable, "-m", "tools.cli", "serve",
                    "--host", HOST, "--port", str(self.port), "--data-dir", str(self.data_dir),
                    "--log-level", "WARNING",
                ],
                cwd=REPO,
                env=self._env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )  # fmt: skip

    async def wait_healthy(self) -> None:
        """Return once `/health` answers 200. `ServerFailed` if the process ends first or
        `health_limit` seconds pass."""
        with trio.move_on_after(self.health_limit):
            while True:
                if not self.running:
                    raise ServerFailed(f"the server exited by itself; its log:\n{self.log_tail()}")
                if await health_status(self.port) == 200:
                    return
                await trio.sleep(HEALTH_POLL)
        raise ServerFailed(
            f"the server was not healthy within {self.health_limit:g} s; its log:\n"
            f"{self.log_tail()}"
        )

    async def kill(self) -> None:
        """SIGKILL the server (our own child, by its pid) and reap it."""
        process = self._process
        assert process is not None and process.poll() is None, "the server is not running"
        os.kill(process.pid, signal.SIGKILL)
        await trio.to_thread.run_sync(process.wait)

    async def stop(self) -> int | None:
        """SIGTERM (a clean stop) and wait up to `stop_limit` seconds; the exit status, or None
        if it had to be killed."""
        process = self._process
        if process is None or process.poll() is not None:
            return None if process is None else process.returncode
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(self.stop_limit):
            return await trio.to_thread.run_sync(process.wait, abandon_on_cancel=True)
        self.close()
        return None

    def close(self) -> None:
        """Leave no server behind (a no-op once it has exited)."""
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()

    def log_tail(self, lines: int = 20) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])


__all__ = ["HOST", "REPO", "ServerFailed", "ServerProcess", "free_port", "health_status"]
