"""Drives `berth exec -it` through a real pseudo-terminal, as a person at a
terminal would: types, resizes the window (TIOCSWINSZ + SIGWINCH), exits.

Usage: pty_exec.py BERTH ARGS...  (BERTH_SERVER and BERTH_STATE_DIR set)
Prints the bytes the terminal showed (repr) on stdout, then `exit=N` with
berth's exit code.
"""

import fcntl
import os
import pty
import select
import signal
import struct
import sys
import termios
import time


def read_until(fd, seen, wanted, timeout=20.0):
    deadline = time.monotonic() + timeout
    while wanted not in seen:
        left = deadline - time.monotonic()
        if left <= 0:
            raise SystemExit(f"no {wanted!r} in {seen!r}")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            try:
                chunk = os.read(fd, 4096)
            except OSError:
                chunk = b""
            if not chunk:
                raise SystemExit(f"the terminal closed before {wanted!r}: {seen!r}")
            seen += chunk
    return seen


def main():
    pid, fd = pty.fork()
    if pid == 0:
        os.execv(sys.argv[1], sys.argv[1:])
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 31, 97, 0, 0))
    seen = read_until(fd, b"", b"# ")
    os.write(fd, b"stty size\r")
    seen = read_until(fd, seen, b"31 97")
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 132, 0, 0))
    os.kill(pid, signal.SIGWINCH)
    time.sleep(0.3)
    os.write(fd, b"stty size\r")
    seen = read_until(fd, seen, b"40 132")
    os.write(fd, b"echo $((6*7))\r")
    seen = read_until(fd, seen, b"42")
    os.write(fd, b"exit 4\r")
    while True:
        try:
            chunk = os.read(fd, 4096)
        except OSError:
            break
        if not chunk:
            break
        seen += chunk
    _, status = os.waitpid(pid, 0)
    print(repr(seen))
    print(f"exit={os.waitstatus_to_exitcode(status)}")


main()
