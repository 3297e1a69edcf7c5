"""bind() of confined processes: a unix socket's name is a file made.

Binding a unix socket to a pathname makes a socket node there, as
mknod(S_IFSOCK) would, and the Landlock baseline allows making sockets
beneath the home, /tmp and the runtime directory. A node at a protected
name (~/.gnupg/S.gpg-agent when no agent runs, a session service in the runtime dir) would
be a confined listener that the user's unconfined gpg, ssh or D-Bus clients talk to
later. So a pathname bind is judged exactly like that mknod: the parent is
resolved and pinned for the target, the entry judged (writable roots,
protected names, state allowances), and the bind made here, on the
target's own socket (a duplicate from pidfd_getfd names the same socket),
by a new thread of the supervisor with a file-system context of its own
(unshare CLONE_FS) and the target's umask. The thread is made while the
request's identity is held (acting), so it creates with the target's
fsuid, fsgid, groups and capabilities (a new thread takes its creator's
credentials); it checks that before binding. The node is made where it was
judged, in one of two ways:

- the program's own string, by a thread that Landlock lets make socket
  nodes only beneath the pinned parent (a per-thread domain), when every
  place beneath that parent is judged alike (writable, nothing protected
  and no state allowance at or beneath it). The kernel resolves the string
  again, so a path swapped meanwhile lands beneath the parent (judged the
  same) or gets EACCES. The socket's name (getsockname, the clients'
  getpeername, /proc/net/unix) is then the program's: multiprocessing's
  managers hand that name to their clients;
- otherwise (something protected beneath the parent: the home, a project
  root with its protections, or /proc and /dev names however spelled
  (//proc/self/fd/N, a symlink to it: the string would lead the
  supervisor's thread elsewhere than the parent), or a target with
  another root), the final name alone, bound relative to the thread's cwd,
  the pinned parent: no window at all, but the socket's recorded name is
  that bare name, not the program's string.

Nothing is answered with CONTINUE, not even for an abstract name, an
autobind or a TCP port: the kernel would look the fd number up again, and
another thread of the target could have put a unix socket there (and a
pathname in the address) in between. Every bind is made here on the
duplicate with the bytes read once; only a unix pathname is judged. The
TCP port rules of --allow-bind are applied here, as Landlock would in the
target (the bind is the supervisor's).
"""

from __future__ import annotations

import ctypes
import errno
import os
import socket
import struct
import threading

from peninsula.kernel import landlock, libc
from peninsula.kernel.resolve import location
from peninsula.policy import engine as policy
from peninsula.supervisor.handlers import kernelorder
from peninsula.supervisor.handlers.request import Denied
from peninsula.supervisor.handlers.sockets import AF_UNIX, _Target, _unix_path

CLONE_FS = 0x200
NR_SETFSUID, NR_SETFSGID = 122, 123

_libc = ctypes.CDLL(None, use_errno=True)
_libc.bind.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
_libc.unshare.argtypes = (ctypes.c_int,)


def _raw_bind(fd: int, addr: bytes) -> int:
    """0, or the errno the kernel gave."""
    if _libc.bind(fd, addr, len(addr)) == 0:
        return 0
    return ctypes.get_errno()


def _in_thread(setup, fd: int, addr: bytes, umask: int, fsuid: int, fsgid: int) -> int:
    """Bind fd to addr from a new thread with a file-system context of its
    own, after setup() (its cwd, its Landlock domain); 0 or the errno."""
    box: list[int] = []

    def work():
        try:
            if _libc.unshare(CLONE_FS) != 0:
                box.append(ctypes.get_errno() or errno.EPERM)
                return
            # Taken from the creating (acting) thread; confirmed, since the
            # node's owner is whoever binds.
            if _libc.syscall(NR_SETFSUID, 0xFFFFFFFF) != fsuid or _libc.syscall(NR_SETFSGID, 0xFFFFFFFF) != fsgid:
                box.append(errno.EPERM)
                return
            os.umask(umask)
            setup()
            box.append(_raw_bind(fd, addr))
        except OSError as err:
            box.append(err.errno or errno.EIO)

    worker = threading.Thread(target=work, name="peninsula-bind", daemon=True)
    worker.start()
    worker.join()
    return box[0] if box else errno.EIO


def _sockets_only_beneath(directory: int) -> None:
    """Confine the calling thread (for good: it ends after one bind) to
    making socket nodes beneath directory, and nowhere else."""
    from landlockpy import AccessFS, AccessNet, Ruleset, Scope

    ruleset = Ruleset(handled_fs=AccessFS.MAKE_SOCK, handled_net=AccessNet.NONE, scoped=Scope.NONE, best_effort=False)
    try:
        ruleset.allow_path(f"/proc/self/fd/{directory}", AccessFS.MAKE_SOCK)
        ruleset.restrict(no_new_privs=True)
    finally:
        ruleset.close()


def _uniform_beneath(pol, where: str, directory: str) -> bool:
    """Would a socket node anywhere beneath directory be judged as the one
    at where (directly in it, allowed)? Only when the location is writable
    by the policy itself and no protection or state allowance lies at or
    beneath directory (every place beneath a writable root is inside it)."""
    if not policy.decide_write(pol, where).allow or policy.protected_beneath(pol, directory) is not None:
        return False
    below = directory.rstrip("/") + "/"
    return not any(prefix.startswith(below) or below.startswith(prefix)
                   for allowance in pol.state for prefix in allowance.prefixes())


def _same_root(tid: int) -> bool:
    ours, theirs = os.stat("/"), os.stat(f"/proc/{tid}/root")
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _address(path: bytes) -> bytes:
    """A pathname address without its NUL, which the kernel adds: a path of
    108 bytes fills sun_path, and one more byte would make it EINVAL."""
    return struct.pack("H", AF_UNIX) + path


def _kernel_answer(parent: int, name: bytes):
    """What unix_bind_bsd would meet in a location it may not write:
    filename_create's answers, EEXIST reported as EADDRINUSE."""
    err, genuine = kernelorder.create(parent, name, want_dir=False)
    return (errno.EADDRINUSE if err == errno.EEXIST else err), genuine


def _leads_to(path: bytes, cwd: int | None, parent: int) -> bool:
    """The directory part of path, resolved by the supervisor (from cwd, or
    its root), is the pinned parent: not so when it goes through /proc/self
    or /dev/fd however spelled (//proc/self/fd/N, a symlink to it, a
    relative path from /proc), which name the supervisor's objects there."""
    head = path.rstrip(b"/").rpartition(b"/")[0] or (b"/" if path.startswith(b"/") else b".")
    try:
        mine = libc.openat2(libc.AT_FDCWD if cwd is None else cwd, head, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC,
                            0, libc.RESOLVE_NO_MAGICLINKS)
    except OSError:
        return False
    try:
        ours, theirs = os.fstat(mine), os.fstat(parent)
    finally:
        os.close(mine)
    return (ours.st_dev, ours.st_ino) == (theirs.st_dev, theirs.st_ino)


def _bind_path(req, fd: int, path: bytes) -> int:
    parent, name, where = req.entry(libc.AT_FDCWD, path)  # bind resolves a relative name from the cwd
    req.check(where, "bind", kernel=lambda: _kernel_answer(parent, name))
    req.check_name(where, "bind", special=True)  # a socket node, as mknod(S_IFSOCK) makes
    st = req.status
    cwd = req.cwd_fd() if not path.startswith(b"/") else None
    if (not path.startswith((b"/proc/", b"/dev/")) and landlock.abi_version() > 0 and _same_root(req.tid)
            and _uniform_beneath(req.sup.policy, where, location(parent)) and _leads_to(path, cwd, parent)):
        # The program's own string, so that the socket's name is the one it
        # gave. The kernel resolves it again, but this thread can make a
        # socket node only beneath the pinned parent, where every place is
        # judged alike: a path swapped meanwhile gets EACCES, or a node in
        # the same writable root with nothing protected.

        def setup():
            if cwd is not None:
                os.fchdir(cwd)
            _sockets_only_beneath(parent)

        return _in_thread(setup, fd, _address(path), st.umask, st.fsuid, st.fsgid)
    # Else the final name, from the pinned parent: the socket's name is that
    # name alone (getsockname, /proc/net/unix).
    return _in_thread(lambda: os.fchdir(parent), fd, _address(name), st.umask, st.fsuid, st.fsgid)


def _check_tcp_port(req, sock: _Target) -> None:
    """--allow-bind: Landlock judges a TCP bind's port in the target; this
    bind is the supervisor's, so the rule is applied here."""
    ports = req.sup.tcp_bind_ports
    if ports is None or sock.type != socket.SOCK_STREAM or sock.domain not in (socket.AF_INET, socket.AF_INET6):
        return
    if len(sock.addr) < 4:
        return  # the kernel refuses the short address (EINVAL)
    port = struct.unpack_from("!H", sock.addr, 2)[0]
    if port not in ports:
        raise Denied(errno.EACCES, f"tcp port {port}", "not in --allow-bind", "bind")


def h_bind(req):
    sock = _Target(req, 0, 1, 2, socket_first=True)  # EBADF, ENOTSOCK, then the address (EINVAL, EFAULT)
    path = _unix_path(sock.addr) if sock.domain == AF_UNIX and sock.family == AF_UNIX else None
    if path is not None:
        err = _bind_path(req, sock.fd, path)
    else:
        _check_tcp_port(req, sock)
        err = _raw_bind(sock.fd, sock.addr)
    if err:
        raise OSError(err, "bind")
    return 0
