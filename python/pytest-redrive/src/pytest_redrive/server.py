"""Starting and stopping a `redrive serve` child process."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from typing import Optional


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_binary(explicit: Optional[str] = None) -> str:
    """`explicit`, else `$REDRIVE_BIN`, else `redrive` on PATH."""
    candidate = explicit or os.environ.get("REDRIVE_BIN") or shutil.which("redrive")
    if not candidate or not os.path.exists(candidate):
        raise RuntimeError(
            "cannot find the redrive binary: pass --redrive-bin, set REDRIVE_BIN, "
            "or put `redrive` on PATH (cargo build -p redrive)"
        )
    return candidate


@dataclass
class RedriveServer:
    """A running `redrive serve --in-memory`."""

    process: subprocess.Popen
    port: int
    account_id: str = "000000000000"
    region: str = "us-east-1"
    log: list = field(default_factory=list)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def queue_url(self, name: str) -> str:
        return f"{self.endpoint}/{self.account_id}/{name}"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


def start_server(
    binary: Optional[str] = None,
    config: Optional[str] = None,
    extra_args: Optional[list] = None,
    timeout: float = 30.0,
) -> RedriveServer:
    """Starts `redrive serve --in-memory` on a free port and waits until it answers."""
    exe = find_binary(binary)
    port = _free_port()
    args = [exe, "serve", "--in-memory", "--host", "127.0.0.1", "--port", str(port)]
    if config:
        args += ["--config", config]
    args += list(extra_args or [])
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    server = RedriveServer(process=proc, port=port)
    deadline = time.monotonic() + timeout
    health = f"{server.endpoint}/_localstack/health"
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
            raise RuntimeError(f"redrive serve exited with {proc.returncode}: {err.strip()}")
        try:
            with urllib.request.urlopen(health, timeout=1) as r:
                if r.status == 200:
                    return server
        except OSError:
            time.sleep(0.05)
    server.stop()
    raise RuntimeError(f"redrive serve did not answer on port {port} within {timeout}s")
