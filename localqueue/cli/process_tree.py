"""Killing a command together with everything it started.

The command runs in its own process group, but a process group is no fence:
a descendant that calls ``setsid`` (every daemon does) leaves it, and
``killpg`` no longer reaches it. On Linux three things close that gap:

1. **The command is a subreaper.** It is started through a tiny launcher
   that calls ``prctl(PR_SET_CHILD_SUBREAPER)`` and then ``exec``s the
   command (the setting survives ``exec``). A descendant orphaned while the
   command lives is then adopted by the command instead of by init, so as
   long as the command runs, *everything* it started -- setsid'd,
   double-forked daemons included -- is in the parent/child tree below its
   pid. Without this, the classic daemon (fork, setsid, fork, first child
   exits) is reparented to init at once and nothing links it to the
   command any more. The launcher is a Python process started with ``-I
   -S`` (about 10 ms per command); it is preferred to ``preexec_fn``, which
   is documented as unsafe in a process with threads, as a worker is.
2. **The tree is frozen before anything is killed.** The tree is read from
   ``/proc/*/stat`` (the parent pid of every process) and every process in
   it gets SIGSTOP; this repeats until a reading finds nobody new. A
   stopped process can neither fork nor exit, so the last reading is the
   whole tree and stays true. Killing first and looking afterwards would
   race: a killed parent's children are reparented (to init, once the
   command itself is dead) and are lost from the tree, and a running
   process can fork between the reading and the kill.
3. **Then SIGKILL, children before their parents, the command last**, and
   finally the command's process group. The order matters: when a process
   dies, the kernel sends SIGCONT to stopped processes in process groups
   its death orphans; by then they already hold a SIGKILL, so they die
   without running again.

A cgroup would contain the tree as well, but creating one needs write access
to a delegated cgroup hierarchy, which a worker started from a shell or a
cron job rarely has; the subreaper needs no privilege. What is not caught: a
process that changed its user (setuid programs; we may not signal it), and a
descendant that escaped while the command *itself* exited on its own at the
very moment it was being killed (its orphans went to init). Elsewhere than
Linux (no subreaper, no ``/proc``), only the process group is killed, as
before.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
from collections.abc import Mapping, Sequence

# Whether the command is started as a subreaper and its tree killed through
# /proc; elsewhere only its process group is killed. The launcher needs a
# Python interpreter: a frozen application's executable is not one.
TREE_KILL = (
    sys.platform.startswith("linux") and bool(sys.executable) and not getattr(sys, "frozen", False)
)

# A reading of the tree that keeps finding new processes (something we may not
# stop keeps forking) must not keep us forever.
MAX_ROUNDS = 100

# Run as ``python -I -S -c LAUNCHER LC_CTYPE CMD ARGS...``. Python's start-up
# changes two things the command would inherit through exec: it may set
# LC_CTYPE (coercion of a C locale, PEP 538, not disabled by -I) and it ignores
# SIGPIPE and SIGXFSZ (which subprocess would otherwise restore for the
# command). Both are put back before exec. A failed exec exits 127 or 126, like
# a shell, with the reason on stderr.
_LAUNCHER = """\
import os, signal, sys
lc_ctype, argv = sys.argv[1], sys.argv[2:]
if lc_ctype == "-":
    os.environ.pop("LC_CTYPE", None)
else:
    os.environ["LC_CTYPE"] = lc_ctype[1:]
for name in ("SIGPIPE", "SIGXFSZ", "SIGXFZ"):
    if hasattr(signal, name):
        signal.signal(getattr(signal, name), signal.SIG_DFL)
try:
    import ctypes
    ctypes.CDLL(None).prctl(36, 1, 0, 0, 0)  # PR_SET_CHILD_SUBREAPER
except Exception:
    pass  # no ctypes: still run the command, its process group is still killed
try:
    os.execvp(argv[0], argv)
except OSError as exc:
    sys.stderr.write(f"cannot run {argv[0]!r}: {exc.strerror}\\n")
    sys.exit(127 if isinstance(exc, FileNotFoundError) else 126)
"""


def launch_argv(argv: Sequence[str], env: Mapping[str, str]) -> list[str]:
    """The argv that runs ``argv`` as a subreaper (or as is, without tree kill)."""
    if not TREE_KILL:
        return list(argv)
    lc_ctype = "=" + env["LC_CTYPE"] if "LC_CTYPE" in env else "-"
    return [sys.executable, "-I", "-S", "-c", _LAUNCHER, lc_ctype, *argv]


def kill_tree(pid: int) -> None:
    """SIGKILL ``pid``, everything below it and its process group (``pid`` must
    lead a process group: the command is started in a new session)."""
    if TREE_KILL:
        with contextlib.suppress(OSError):  # no /proc: the process group only
            _freeze_and_kill(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)


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


def _signal(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.kill(pid, sig)
