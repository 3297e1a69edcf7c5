"""bind() of confined processes: a unix socket's name is a file made.

Binding a unix socket to a pathname makes a socket node there, as
mknod(S_IFSOCK) would, and the Landlock baseline allows making sockets
beneath the home, /tmp and the runtime directory. A node at a protected
name (~/.gnupg/S.gpg-agent when no agent runs, a session service in the runtime dir) would
be a confined listener that the user's unconfined gpg, ssh or D-Bus clients talk to
later. So a pathname bind is judged exactly like that mknod: the parent is
resolved and pinned for the target, the entry judged (writable roots,
protected names, state allowances), and the bind made here, on the target's
own socket (a duplicate from pidfd_getfd names the same socket), by a thread
of the supervisor with a file-system context of its own (unshare CLONE_FS)
whose cwd is the pinned parent and whose umask is the target's: the final
name, bound relative to that cwd, is created in the directory judged,
whatever the target does to the path meanwhile. The thread is made while
the request's identity is held (acting), so it creates with the target's
fsuid, fsgid, groups and capabilities (a new thread takes its creator's
credentials); it checks that before binding.

The cost: the socket's recorded name (getsockname, the listener's name as
its clients' getpeername sees it, /proc/net/unix) is the final name as bound
here, not the string the program gave, whenever that string had a directory
part. The kernel keeps the string passed to bind, and no string but a single
component relative to the pinned directory is resolved without a window the
target can use.

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

from peninsula.kernel import libc
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


def _bind_in(parent: int, name: bytes, fd: int, umask: int, fsuid: int, fsgid: int) -> int:
    """Bind fd to name in the pinned directory parent, from a thread whose
    cwd is parent; 0 or the kernel's errno."""
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
            os.fchdir(parent)
            os.umask(umask)
            box.append(_raw_bind(fd, struct.pack("H", AF_UNIX) + name + b"\0"))
        except OSError as err:
            box.append(err.errno or errno.EIO)

    worker = threading.Thread(target=work, name="peninsula-bind", daemon=True)
    worker.start()
    worker.join()
    return box[0] if box else errno.EIO


def _kernel_answer(parent: int, name: bytes):
    """What unix_bind_bsd would meet in a location it may not write:
    filename_create's answers, EEXIST reported as EADDRINUSE."""
    err, genuine = kernelorder.create(parent, name, want_dir=False)
    return (errno.EADDRINUSE if err == errno.EEXIST else err), genuine


def _bind_path(req, fd: int, path: bytes) -> int:
    parent, name, where = req.entry(libc.AT_FDCWD, path)  # bind resolves a relative name from the cwd
    req.check(where, "bind", kernel=lambda: _kernel_answer(parent, name))
    req.check_name(where, "bind", special=True)  # a socket node, as mknod(S_IFSOCK) makes
    st = req.status
    return _bind_in(parent, name, fd, st.umask, st.fsuid, st.fsgid)


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
