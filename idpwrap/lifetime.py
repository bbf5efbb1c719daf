"""The process tree idpwrap owns: nothing it started outlives it when it is cancelled.

Stopping our direct children is not enough: buildah runs a RUN step through helper processes,
and when those die before the step's own process (buildah stopped by a forwarded signal, say),
that process is re-parented to PID 1 and runs on (docs/development.md, "Facts seen"). So the
idpwrap program makes itself the *child subreaper* of its tree (``PR_SET_CHILD_SUBREAPER``):
every orphan below it is re-parented to idpwrap instead of PID 1, so the whole tree stays
findable under our PID in /proc, and ``stop_descendants`` signals and reaps it before we
exit. As PID 1 of a PID namespace (idpwrap's own image) the kernel already gives us every
orphan, and the same sweep runs.

Why not buildah's own isolation: ``--isolation oci`` would put each RUN step in a PID namespace
of its own, whose death kills the step, but needs an OCI runtime and namespaces that CI runners
and nested containers often lack (hence chroot, tools/buildah.py); and a subreaper covers
skopeo's, cosign's and any helper's children too.

Only the program (``cli.main``) owns its tree: imported as a library, or inside the test
runner, idpwrap must never signal processes it did not start, so nothing here acts until
``own_tree`` was called.

The termination signals are handled for the whole run, not only while a child runs: as PID 1
of a namespace, a signal without a handler is dropped by the kernel, so ``docker stop`` would
wait for its SIGKILL.
"""

from __future__ import annotations

import os
import signal
import time

from idpwrap.errors import EXIT_HANGUP, EXIT_TERMINATED, Interrupted

PR_SET_CHILD_SUBREAPER = 36
TERMINATING = {
    signal.SIGINT: ("SIGINT", 130),
    signal.SIGTERM: ("SIGTERM", EXIT_TERMINATED),
    signal.SIGHUP: ("SIGHUP", EXIT_HANGUP),
}
# After SIGTERM, how long what is left of the tree may take to end before SIGKILL; only an
# upper bound: the sweep ends as soon as /proc shows nothing left.
GRACE_SECONDS = 3.0
# A process in uninterruptible sleep ignores even SIGKILL for a while; past this, give up
# rather than hang (the kernel finishes the kill when the sleep ends).
GIVE_UP_SECONDS = 30.0
POLL_SECONDS = 0.01

_state = {"owner": False, "adopting": False}


def own_tree() -> None:
    """This process is the idpwrap program: its descendants are all its own to stop, and
    SIGTERM and SIGHUP end it as SIGINT does (an exception that unwinds and cleans up)."""
    _state["owner"] = True
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, _raise_interrupted)


def ignore_termination() -> None:
    """From here on the program only stops its tree and exits: more signals change nothing."""
    for signum in TERMINATING:
        signal.signal(signum, signal.SIG_IGN)


def owns_tree() -> bool:
    return _state["owner"]


def interruption(signum: int) -> Interrupted:
    name, code = TERMINATING.get(signum, ("SIGINT", 130))
    return Interrupted(name, code)


def _raise_interrupted(signum: int, frame: object) -> None:
    raise interruption(signum)


def adopt_orphans() -> None:
    """Before the first child starts: become the subreaper of our tree (once; PID 1 of a PID
    namespace already is). ctypes is imported here, not at start-up: a command that starts
    no tool pays nothing."""
    if not _state["owner"] or _state["adopting"]:
        return
    if os.getpid() == 1:
        _state["adopting"] = True
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        _state["adopting"] = libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    except (OSError, AttributeError):  # not Linux, or no prctl: the direct children only
        _state["adopting"] = False


def _children_table() -> dict[int, list[tuple[int, bool]]]:
    """Every process's children from /proc (PPid, and whether each is a zombie).
    ``/proc/PID/task/TID/children`` would be cheaper, but kernels built without
    CONFIG_PROC_CHILDREN (these machines) lack it."""
    table: dict[int, list[tuple[int, bool]]] = {}
    for name in os.listdir("/proc"):
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                stat = handle.read()
        except OSError:  # gone meanwhile
            continue
        fields = stat[stat.rindex(b")") + 2 :].split()
        table.setdefault(int(fields[1]), []).append((int(name), fields[0] == b"Z"))
    return table


def descendants(pid: int | None = None) -> list[int]:
    """The living processes below ``pid`` (default: us), parents before their children."""
    table = _children_table()
    found: list[int] = []
    parents = [os.getpid() if pid is None else pid]
    while parents:
        parent = parents.pop()
        for child, zombie in table.get(parent, ()):
            if not zombie:
                found.append(child)
            parents.append(child)
    return found


def reap_adopted(known: frozenset[int] = frozenset()) -> None:
    """Collect the exit status of our children that have ended, except ``known`` (pids a
    caller waits for itself): orphans we adopted would otherwise stay zombies until we exit."""
    me = os.getpid()
    for child, zombie in _children_table().get(me, ()):
        if zombie and child not in known:
            try:
                os.waitpid(child, os.WNOHANG)
            except ChildProcessError:
                pass


def stop_descendants(grace: float = GRACE_SECONDS) -> list[int]:
    """Stop every process below us: SIGTERM once each, SIGKILL to what is left after
    ``grace`` seconds, until /proc shows none (or ``GIVE_UP_SECONDS``). Correct whatever the
    timing: a process that forks meanwhile has its child found on the next look, and an
    orphan is re-parented to us (the subreaper), never out of sight. The pids seen."""
    if not _state["owner"]:
        return []
    started = time.monotonic()
    terminated: set[int] = set()
    seen: list[int] = []
    while True:
        reap_adopted()
        alive = descendants()
        if not alive:
            return seen
        seen += [pid for pid in alive if pid not in seen]
        waited = time.monotonic() - started
        if waited > GIVE_UP_SECONDS:
            return seen
        for pid in alive:
            if waited > grace:
                _signal(pid, signal.SIGKILL)
            elif pid not in terminated:
                terminated.add(pid)
                _signal(pid, signal.SIGTERM)
        time.sleep(POLL_SECONDS)


def kill_descendants() -> None:
    """SIGKILL to everything below us now, no grace (a child ignored a forwarded signal)."""
    if _state["owner"]:
        for pid in descendants():
            _signal(pid, signal.SIGKILL)


def _signal(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass
