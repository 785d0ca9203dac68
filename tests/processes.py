"""A real server the tests start in a folder of their own (Dovecot, PgBouncer): waiting for
it to listen, and stopping it."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


def wait_listening(
    process: subprocess.Popen[bytes],
    port: int,
    name: str,
    log: Callable[[], str],
    ready: Callable[[socket.socket], bool] = lambda _: True,
) -> None:
    """Until `process` accepts on `port` (and `ready` says so of the connection); raises
    RuntimeError with its output and log if it stops, or after ten seconds."""
    for _ in range(200):
        if process.poll() is not None:
            output = process.stdout.read().decode() if process.stdout else ""
            raise RuntimeError(f"{name} stopped at start-up: {output}{log()}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
                if ready(sock):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"{name} did not answer on port {port}: {log()}")


def stop(process: subprocess.Popen[bytes], folder: Path) -> None:
    """Terminate `process` (killed if it has not ended in ten seconds), then remove its
    folder."""
    process.terminate()
    try:
        process.wait(10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(5)
    if process.stdout:
        process.stdout.close()
    shutil.rmtree(folder, ignore_errors=True)
