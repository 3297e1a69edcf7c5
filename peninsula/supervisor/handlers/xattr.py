"""Extended attributes: setxattr, removexattr and their l-, f- and -at forms.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
from peninsula.supervisor.handlers import kernelorder
from peninsula.kernel import libc
from peninsula.kernel import target
from peninsula.supervisor.handlers.request import Denied, XATTR_NAME_MAX, at_flags, fd_only, signed_int, object_at


def _xattr_name(req, index):
    try:
        name = target.read_cstring(req.tid, req.args[index], XATTR_NAME_MAX + 1)
    except OSError as err:
        if err.errno == errno.ENAMETOOLONG:
            raise OSError(errno.ERANGE, "xattr name too long") from None
        raise
    req.validate()
    if not name:
        raise OSError(errno.ERANGE, "empty xattr name")
    return name


def _setxattr(req, pinned, name, value, flags, op):
    fsuid = req.status.fsuid
    where = req.check_fd(pinned, op, errno.EPERM, metadata=True,
                         kernel=lambda: kernelorder.xattr(pinned, name, value is None, flags, fsuid))
    if value is not None and name == b"security.capability":
        if fsuid != 0:
            raise OSError(errno.EPERM, "no CAP_SETFCAP: the kernel refuses it too")
        # file capabilities make a program privileged for whoever runs it later
        raise Denied(errno.EPERM, where, "file capabilities cannot be set in the sandbox", op)
    if stat.S_ISLNK(os.fstat(pinned).st_mode):
        # user.* never goes on a symlink; a name no handler takes is EOPNOTSUPP
        known = name.startswith((b"user.", b"trusted.", b"security.", b"system."))
        raise OSError(errno.EPERM if known else errno.EOPNOTSUPP, "xattr on a symlink")
    with req.as_target():
        if value is None:
            os.removexattr(f"/proc/self/fd/{pinned}", name)
        else:
            os.setxattr(f"/proc/self/fd/{pinned}", name, value, flags)
    return 0


def _xattr_value(req, addr, size):
    if size > target.XATTR_SIZE_MAX:
        raise OSError(errno.E2BIG, "xattr value too big")
    return req.memory(addr, size) if size else b""


def _xattr_args(req, name_addr_index: int, value_addr: int, size: int, flags: int):
    """setxattr_copy(): flags, name and value are checked, in this order,
    before the path is even looked at."""
    if flags & ~(kernelorder.XATTR_CREATE | kernelorder.XATTR_REPLACE):
        raise OSError(errno.EINVAL, "bad xattr flags")
    name = _xattr_name(req, name_addr_index)
    return name, _xattr_value(req, value_addr, size), flags


def _set_args(req):
    """(name, value, flags) of setxattr, lsetxattr and fsetxattr."""
    return _xattr_args(req, 1, req.args[2], req.args[3], signed_int(req.args[4]))


def h_setxattr(req):
    name, value, flags = _set_args(req)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=True)
    return _setxattr(req, pinned, name, value, flags, "setxattr")


def h_lsetxattr(req):
    name, value, flags = _set_args(req)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=False)
    return _setxattr(req, pinned, name, value, flags, "setxattr")


def h_fsetxattr(req):
    name, value, flags = _set_args(req)
    pinned = fd_only(req, 0)
    return _setxattr(req, pinned, name, value, flags, "setxattr")


def h_removexattr(req):
    name = _xattr_name(req, 1)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=True)
    return _setxattr(req, pinned, name, None, 0, "removexattr")


def h_lremovexattr(req):
    name = _xattr_name(req, 1)
    pinned = req.pin(libc.AT_FDCWD, req.path(0), follow=False)
    return _setxattr(req, pinned, name, None, 0, "removexattr")


def h_fremovexattr(req):
    name = _xattr_name(req, 1)
    return _setxattr(req, fd_only(req, 0), name, None, 0, "removexattr")


def h_setxattrat(req):
    flags = at_flags(req, 2)
    if req.args[5] < 16:
        raise OSError(errno.EINVAL, "xattr_args too small")
    if req.args[5] > 4096:
        raise OSError(errno.E2BIG, "xattr_args too big")
    raw = req.memory(req.args[4], req.args[5])
    if any(raw[16:]):
        raise OSError(errno.E2BIG, "unknown xattr_args fields")
    value_addr, size, xflags = struct.unpack_from("=QII", raw)
    name, value, xflags = _xattr_args(req, 3, value_addr, size, xflags)
    path = req.optional_path(1) or b""
    pinned = object_at(req, req.dirfd(0), path, flags)
    return _setxattr(req, pinned, name, value, xflags, "setxattr")


def h_removexattrat(req):
    flags = at_flags(req, 2)
    name = _xattr_name(req, 3)
    path = req.optional_path(1) or b""
    pinned = object_at(req, req.dirfd(0), path, flags)
    return _setxattr(req, pinned, name, None, 0, "removexattr")
