"""Children that cannot outlive the process that started them, even one killed with SIGKILL.

The stack's processes run in sessions of their own, so that a terminal's Ctrl-C reaches only
`make run`, which then stops them in order (Redis last). Out of the terminal's process group,
nothing would end them if `make run` died; so each child asks the kernel for a SIGKILL when its
parent dies (Linux's PR_SET_PDEATHSIG), as Celery does for its own pool processes. Elsewhere
(macOS) the sessions stay, without that guarantee.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import IO

import psutil

LINUX = sys.platform == "linux"
PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36

_libc = ctypes.CDLL(None, use_errno=True)

# The parent-death signal fires when the *thread* that forked the child ends, not its process.
# Every child is forked from this one thread, which lasts as long as the process: a stack
# started from a short-lived thread (the soak test's chaos thread) keeps its processes.
_forker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="devstack-fork")


def _prctl(option: int, value: int) -> None:
    if _libc.prctl(option, ctypes.c_ulong(value), 0, 0, 0) != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, os.strerror(errno))


def _die_with(parent: int) -> None:
    """In the child, between fork and exec."""
    _prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:  # the parent died before prctl: no signal will come
        os.kill(os.getpid(), signal.SIGKILL)


def spawn(
    argv: list[str],
    *,
    cwd: Path,
    env: dict[str, str],
    stdout: IO[bytes] | None,
    pass_fds: Sequence[int] = (),
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own, killed by the kernel when this process dies.

    `stdout` None: the child writes to this process's stdout (the terminal of make run).
    """

    def fork() -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=None if stdout is None else subprocess.STDOUT,
            pass_fds=pass_fds,
            start_new_session=True,
            preexec_fn=functools.partial(_die_with, os.getpid()) if LINUX else None,
        )

    return _forker.submit(fork).result()


def adopt_orphans() -> None:
    """Become the parent of this process's orphaned descendants (Linux's child subreaper).

    A worker killed with SIGKILL orphans its pool processes; init would inherit them, and not
    every init reaps (a container's often does not), so make run reaps them itself.
    """
    if LINUX:
        _prctl(PR_SET_CHILD_SUBREAPER, 1)


def reap_orphans(timeout: float) -> None:
    """Kill and reap every child still here: none after a clean stop, orphans after a forced one."""
    orphans = psutil.Process().children()
    for orphan in orphans:
        with contextlib.suppress(psutil.NoSuchProcess):
            orphan.kill()
    psutil.wait_procs(orphans, timeout=timeout)
