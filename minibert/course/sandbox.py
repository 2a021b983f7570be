"""The supervisor that runs one learner copy's tests and leaves no process of it behind.

`minibert exercises grade` starts this file as a script (``python -I -S sandbox.py CONFIG``),
once per pytest run of a copy. It uses only the standard library and imports nothing from the
copy, so nothing a learner wrote runs in it. It

- makes itself a *child subreaper* (Linux): every process the tests start, even one that
  double-forks and calls setsid() to leave the process group, is re-parented to this supervisor
  when its parent dies, so it can still be found and killed;
- starts the command in a new session (its own process group), with stdin from /dev/null,
  stdout and stderr to a file, only the file descriptors it is given, and in the child before
  exec: no new privileges (setuid programs such as sudo gain nothing), resource limits (CPU
  seconds, address space, file size, processes, no core files) and, when the grader runs as
  root, an unprivileged user id and group (and, if the kernel allows, no network);
- as root, where cgroupfs is writable, puts the command in a pids cgroup of its own (a bound
  on processes that holds for root too, and a list of them all);
- waits until the command exits, the wall-clock `deadline` passes, the grader asks it to stop
  (SIGTERM or SIGINT) or the grader is gone; then kills the whole group, every process of the
  sandbox's user id and of its cgroup, and every process re-parented to it, until none is
  left;
- prints one JSON line for the grader: {"returncode": ..., "reason": ..., "killed": ...}.

What it cannot do is described in exercises/README.md ("What the sandbox does not protect
against"): without root, the tests run with the teacher's user id.
"""

from __future__ import annotations

import ctypes
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable

PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
CLONE_NEWNS, CLONE_NEWUSER, CLONE_NEWNET = 0x20000, 0x10000000, 0x40000000
MS_RDONLY, MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18
KEEP_MOUNT_FLAGS = 2 | 4 | 8 | 1024 | 2048  # nosuid, nodev, noexec, noatime, nodiratime

_LIBC = None


def _libc():
    global _LIBC
    if _LIBC is None:
        try:
            _LIBC = ctypes.CDLL(None, use_errno=True)
        except OSError:
            _LIBC = False
    return _LIBC


def _prctl(option: int, value: int) -> bool:
    libc = _libc()
    return bool(libc) and hasattr(libc, "prctl") and libc.prctl(option, value, 0, 0, 0) == 0


def _mount(source: str | None, target: str | None, flags: int) -> bool:
    enc = lambda p: None if p is None else os.fsencode(p)  # noqa: E731
    return _libc().mount(enc(source), enc(target), None, flags, None) == 0


def _mount_points() -> list[str]:
    with open("/proc/self/mounts", encoding="utf-8", errors="surrogateescape") as f:
        points = [line.split()[1] for line in f if len(line.split()) > 1]
    unescape = lambda p: p.replace("\\040", " ").replace("\\011", "\t").replace(  # noqa: E731
        "\\012", "\n").replace("\\134", "\\")
    return [unescape(p) for p in points]


def reveal(paths: dict[str, list[str]]) -> bool:
    """For each private folder (such as /root, mode 700, which a user of the sandbox's own
    cannot enter): cover it with an empty tmpfs that anyone may enter and put back only the
    folders to keep below it (where Python lives, say); the rest of it is hidden. Root only,
    in a new mount namespace."""
    libc = _libc()
    for private, keep in paths.items():
        try:
            fds = [os.open(k, os.O_PATH) for k in keep]  # opened before the tmpfs covers them
        except OSError:
            return False
        try:
            if libc.mount(b"tmpfs", os.fsencode(private), b"tmpfs", 2 | 4,  # nosuid, nodev
                          b"mode=0755") != 0:
                return False
            for k, fd in zip(keep, fds, strict=True):
                os.makedirs(k, exist_ok=True)
                if not _mount(f"/proc/self/fd/{fd}", k, MS_BIND | MS_REC):
                    return False
        finally:
            for fd in fds:
                os.close(fd)
    return True


def readonly_world(writable: list[str], no_network: bool,
                   hidden: dict[str, list[str]] | None = None) -> bool:
    """In a new mount namespace (and, without root, a new user namespace mapping only our own
    ids), make every mount read-only except the folders in `writable`; with `no_network`, a
    new network namespace too (no interface but a down loopback). False when the kernel does
    not allow it (then nothing changed, or only part: the caller says what it could not do)."""
    libc, uid, gid = _libc(), os.getuid(), os.getgid()
    if not libc:
        return False
    flags = CLONE_NEWNS | (CLONE_NEWNET if no_network else 0)
    if uid != 0:
        flags |= CLONE_NEWUSER
    if libc.unshare(flags) != 0:
        return False
    if uid != 0:  # map our own ids only: no other user exists in here
        for name, text in (("setgroups", "deny"), ("uid_map", f"{uid} {uid} 1"),
                           ("gid_map", f"{gid} {gid} 1")):
            with open(f"/proc/self/{name}", "w") as f:
                f.write(text)
    if not _mount(None, "/", MS_REC | MS_PRIVATE):
        return False
    if hidden and (uid != 0 or not reveal(hidden)):
        return False
    for path in writable:
        if not _mount(path, path, MS_BIND | MS_REC):
            return False
    ok = True
    for point in _mount_points():
        if point in writable:
            continue
        try:
            keep = os.statvfs(point).f_flag & KEEP_MOUNT_FLAGS
        except OSError:
            continue
        ok &= _mount(None, point, MS_REMOUNT | MS_BIND | MS_RDONLY | keep)
    return ok


def drop_capabilities() -> None:
    """Give up every capability for good (root without them cannot remount, change owners,
    or bypass file permissions); run as the last step before exec."""
    for cap in range(64):
        _prctl(PR_CAPBSET_DROP, cap)

    class Header(ctypes.Structure):
        _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]

    class Data(ctypes.Structure):
        _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32),
                    ("inheritable", ctypes.c_uint32)]

    data = (Data * 2)()
    _libc().capset(ctypes.byref(Header(0x20080522, 0)), data)


def make_cgroup(max_pids: int) -> str | None:
    """A pids cgroup of its own, where cgroupfs is writable (root, no container walls): at
    most `max_pids` processes and threads, root's included (RLIMIT_NPROC does not bind
    root), and a list of every process in it, however it left the process group."""
    name = f"minibert-grade-{os.getpid()}"
    for base in ("/sys/fs/cgroup/pids", "/sys/fs/cgroup"):
        if not os.path.exists(os.path.join(base, "cgroup.procs")):
            continue  # not a cgroup hierarchy (or not mounted)
        path = os.path.join(base, name)
        try:
            os.mkdir(path)
        except OSError:
            continue
        try:
            if os.path.exists(os.path.join(path, "pids.max")):  # made by the kernel
                with open(os.path.join(path, "pids.max"), "w") as f:
                    f.write(str(max_pids))
                return path
        except OSError:
            pass
        remove_cgroup(path)
    return None


def cgroup_members(path: str | None) -> list[int]:
    if path is None:
        return []
    try:
        with open(os.path.join(path, "cgroup.procs"), encoding="ascii") as f:
            return [int(line) for line in f if line.strip()]
    except (OSError, ValueError):
        return []


def remove_cgroup(path: str | None) -> None:
    if path is None:
        return
    for _ in range(250):  # killed members take a moment to leave (seconds, after a fork bomb)
        try:
            os.rmdir(path)
            return
        except OSError:
            if not os.path.exists(path):
                return
            time.sleep(0.02)


LIMITS = {"cpu": resource.RLIMIT_CPU, "as": resource.RLIMIT_AS,
          "fsize": resource.RLIMIT_FSIZE, "nproc": getattr(resource, "RLIMIT_NPROC", None),
          "core": resource.RLIMIT_CORE}


def _child_setup(config: dict) -> Callable[[], None]:
    """What the child does between fork and exec (this supervisor has a single thread, so
    running Python here is safe)."""

    def setup() -> None:
        _prctl(PR_SET_NO_NEW_PRIVS, 1)
        if config.get("cgroup"):  # first: the read-only world below includes cgroupfs
            try:
                with open(os.path.join(config["cgroup"], "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass
        if config.get("writable") is not None:
            try:  # best effort: the grader's probe says what took effect
                readonly_world(config["writable"], bool(config.get("no_network")),
                               config.get("reveal"))
            except OSError:
                pass
        for name, value in config.get("limits", {}).items():
            which = LIMITS.get(name)
            if which is not None and value is not None:
                try:
                    resource.setrlimit(which, (value, value))  # hard = soft: cannot be raised
                except (ValueError, OSError):
                    pass  # the OS does not offer this limit, or it is already lower
        if config.get("gid") is not None:
            os.setgroups([])
            os.setgid(config["gid"])
        if config.get("uid") is not None:
            os.setuid(config["uid"])
        elif os.getuid() == 0:
            drop_capabilities()

    return setup


def _processes():
    """(pid, parent pid, real uid) of every process that can be seen in /proc."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="utf-8", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            yield int(entry), int(fields["PPid"]), int(fields["Uid"].split()[0])
        except (OSError, KeyError, ValueError):
            continue  # it ended while we looked


def kill_everything(group: int, uid: int | None, statuses: dict,
                    cgroup: str | None = None) -> int:
    """Kill the process group, the sandbox user's processes and every child of this
    supervisor (re-parented orphans included), then reap them; repeat until none is left.
    Returns how many processes were killed besides the group leader; `statuses` gets the
    exit status of each child reaped."""
    me, killed, seen = os.getpid(), 0, set()
    for _ in range(10_000):  # a fork bomb is bounded by the process limit; this loop too
        try:
            os.killpg(group, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        targets = [pid for pid, ppid, puid in _processes()
                   if pid != me and (ppid == me or (uid is not None and puid == uid))]
        targets += [pid for pid in cgroup_members(cgroup) if pid != me]
        for pid in targets:
            try:
                os.kill(pid, signal.SIGKILL)
                if pid != group and pid not in seen:
                    seen.add(pid)
                    killed += 1
            except (ProcessLookupError, PermissionError):
                pass
        reaped = False
        while True:  # reap whatever has ended (our children only)
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return killed  # no child left at all
            if pid == 0:
                break
            statuses[pid], reaped = os.waitstatus_to_exitcode(status), True
        if not targets and not reaped:
            time.sleep(0.01)
    return killed


def supervise(config: dict) -> dict:
    subreaper = _prctl(PR_SET_CHILD_SUBREAPER, 1)
    stop = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.append(True))
    signal.signal(signal.SIGHUP, signal.SIG_IGN)
    parent = os.getppid()
    if os.getuid() == 0 and config.get("pids_max"):
        config["cgroup"] = make_cgroup(config["pids_max"])
    with open(config["output"], "ab") as out:
        child = subprocess.Popen(
            config["argv"], cwd=config["cwd"], env=config["env"], stdin=subprocess.DEVNULL,
            stdout=out, stderr=subprocess.STDOUT, pass_fds=tuple(config.get("pass_fds", ())),
            start_new_session=True, preexec_fn=_child_setup(config))
    for fd in config.get("pass_fds", ()):
        os.close(fd)  # the child holds them now; the grader sees the event pipe end with it
    print(json.dumps({"started": child.pid, "cgroup": config.get("cgroup")}), flush=True)
    deadline = time.monotonic() + config["deadline"]
    reason = "exited"
    while child.poll() is None:
        if stop:
            reason = "stopped"
        elif time.monotonic() > deadline:
            reason = "deadline"
        elif os.getppid() != parent:
            reason = "grader gone"
        else:
            time.sleep(0.02)
            continue
        break
    statuses: dict[int, int] = {}
    killed = kill_everything(child.pid, config.get("uid"), statuses, config.get("cgroup"))
    remove_cgroup(config.get("cgroup"))
    returncode = child.returncode if child.returncode is not None else statuses.get(child.pid)
    return {"returncode": returncode, "reason": reason, "killed": killed,
            "subreaper": subreaper, "cgroup": bool(config.get("cgroup"))}


if __name__ == "__main__":
    print(json.dumps(supervise(json.loads(sys.argv[1]))), flush=True)
