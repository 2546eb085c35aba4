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
2. **Then the tree is frozen and killed**, children before their parents,
   the command last (:func:`localqueue.processes.kill_process_tree`, which
   says why in that order), and finally the command's process group.

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

from localqueue.processes import kill_process_tree

# Whether the command is started as a subreaper and its tree killed through
# /proc; elsewhere only its process group is killed. The launcher needs a
# Python interpreter: a frozen application's executable is not one.
TREE_KILL = (
    sys.platform.startswith("linux") and bool(sys.executable) and not getattr(sys, "frozen", False)
)

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
        kill_process_tree(pid)
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
