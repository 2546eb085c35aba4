"""Killing a process together with everything it started.

A process group is no fence: a descendant that calls ``setsid`` (every
daemon does) leaves it, and ``killpg`` no longer reaches it. On Linux
:func:`kill_process_tree` reads the tree below a process from ``/proc`` (the
parent pid of every process) and:

1. **freezes it first**: every process in it gets SIGSTOP, and the tree is
   read again until a reading finds nobody new. A stopped process can
   neither fork nor exit, so the last reading is the whole tree and stays
   true. Killing first and looking afterwards would race: a killed parent's
   children are reparented (and lost from the tree), and a running process
   can fork between the reading and the kill;
2. **then SIGKILLs it, children before their parents, the root last**. The
   order matters: when a process dies, the kernel sends SIGCONT to stopped
   processes in process groups its death orphans; by then they already hold
   a SIGKILL, so they die without running again.

What is not caught: a process that changed its user (a setuid program; we may
not signal it), and a descendant already reparented away from the tree (to
init, or to a subreaper outside it) before the call. Elsewhere than Linux
only the root is killed.

Used by ``localqueue queue exec`` (a timeout, a worker told to stop at once)
and by the conformance harness's runner (its producers and consumers).
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping

__all__ = ["PROC_TREE", "kill_process_tree"]

# Whether the tree below a process can be read (from /proc).
PROC_TREE = sys.platform.startswith("linux")

# A reading of the tree that keeps finding new processes (something we may
# not stop keeps forking) must not keep us forever.
MAX_ROUNDS = 100


def kill_process_tree(root: int) -> None:
    """SIGKILL ``root`` and every process below it (see the module's docstring)."""
    if PROC_TREE:
        with contextlib.suppress(OSError):  # no /proc after all: the root alone
            _freeze_and_kill(root)
    _signal(root, signal.SIGKILL)


def _freeze_and_kill(root: int) -> None:
    if os.readlink("/proc/self") != str(os.getpid()):
        return  # a /proc of another pid namespace: its pids are not ours to signal
    stopped: set[int] = set()
    tree = _tree()
    for _ in range(MAX_ROUNDS):
        new = [pid for pid in _walk(root, tree) if pid not in stopped]
        if not new:
            break
        for pid in new:
            _signal(pid, signal.SIGSTOP)
        stopped.update(new)
        tree = _tree()
    for pid in reversed(_walk(root, tree)):  # children before parents, root last
        _signal(pid, signal.SIGKILL)


def _tree() -> dict[int, list[int]]:
    """Children by parent pid, of every process still running on the machine."""
    children: dict[int, list[int]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as stat:
                data = stat.read()
        except OSError:  # gone since the listing
            continue
        # The command name (field 2) may hold spaces and parentheses: the
        # fields after it start after its last ")".
        state, ppid = data[data.rindex(b")") + 2 :].split(maxsplit=2)[:2]
        if state != b"Z":  # a zombie has no children left and cannot be killed
            children.setdefault(int(ppid), []).append(int(name))
    return children


def _walk(root: int, children: Mapping[int, list[int]]) -> list[int]:
    """``root`` and its descendants, every parent before its children."""
    order, seen = [root], {root}
    for pid in order:  # grows while it is read: breadth first
        for child in children.get(pid, ()):
            if child not in seen:  # a reading is no atomic snapshot: be safe
                seen.add(child)
                order.append(child)
    return order


def _signal(pid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
