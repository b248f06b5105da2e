"""A dead man's switch for the REPL process: a tiny watcher process that kills it from outside.

Every in-process way to stop a runaway cell (asynchronous exceptions, SIGALRM, the watchdog's
hard kill) needs the interpreter to run Python code, and C code that holds the GIL — a
catastrophic regex in a fan-out thread, a huge ``str.count`` — stops all of them at once. So
the cell clock also arms this switch: it writes a deadline (``CLOCK_MONOTONIC`` seconds, the
same clock in every process of the machine) down a pipe, and pushes it back for as long as the
watchdog thread keeps running. A separate process reads the pipe; when a deadline passes
without being pushed back, it sends SIGKILL to the REPL process. The runtime then sees the
worker die and goes on in a new one from the call's checkpoint, the model told (see `runtime`).

The watcher is a ~10 MB Python started with ``-I -S`` (no site, no environment), one per REPL
process; it exits when the pipe closes, that is, when the REPL process ends for any reason.
No Ray, no RestrictedPython here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading

_WATCHER = r"""
import os, select, signal, sys, time
pid, fd = int(sys.argv[1]), int(sys.argv[2])
deadline, buffer = 0.0, b""
while True:
    wait = 0.5 if not deadline else max(0.0, min(0.5, deadline - time.monotonic()))
    ready, _, _ = select.select([fd], [], [], wait)
    if ready:
        data = os.read(fd, 4096)
        if not data:
            sys.exit(0)
        buffer += data
        *lines, buffer = buffer.split(b"\n")
        if lines:
            deadline = float(lines[-1])
    if deadline and time.monotonic() >= deadline:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
        sys.exit(0)
"""


class KillSwitch:
    """Kills this process from outside unless `arm`'s deadline keeps being pushed back."""

    def __init__(self) -> None:
        read_fd, self._write_fd = os.pipe()
        try:
            self._watcher = subprocess.Popen(
                [sys.executable, "-I", "-S", "-c", _WATCHER, str(os.getpid()), str(read_fd)],
                pass_fds=(read_fd,),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL,
                close_fds=True,
            )
        finally:
            os.close(read_fd)
        os.set_inheritable(self._write_fd, False)
        self._lock = threading.Lock()
        self.deadline = 0.0

    def arm(self, deadline: float) -> None:
        """Kill this process at `deadline` (`time.monotonic()` seconds) unless armed again."""
        self._send(deadline)

    def disarm(self) -> None:
        self._send(0.0)

    def _send(self, deadline: float) -> None:
        with self._lock:
            if deadline == self.deadline:
                return
            self.deadline = deadline
            try:
                os.write(self._write_fd, f"{deadline:.3f}\n".encode())
            except OSError:  # the watcher is gone: nothing left to arm
                pass

    def close(self) -> None:
        """Stop the watcher (it exits when the pipe closes)."""
        try:
            os.close(self._write_fd)
        except OSError:
            pass
        self._watcher.wait(timeout=5)
