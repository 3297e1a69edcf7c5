"""connect and sendto with an address: whom a socket reaches, by family.

A unix address is judged by its listener (sockets.py), an address of this
host by the socket that answers there (loopback.py); other hosts are
connected as given.
"""

from __future__ import annotations

import errno
import os
import socket

from peninsula.supervisor.handlers import listen, loopback
from peninsula.supervisor.handlers.request import signed_int
from peninsula.supervisor.handlers.sockets import AF_UNIX, DGRAM_MAX, MSG_FASTOPEN, SOCKADDR_UN, SUN_PATH_OFFSET, _Call, _Judge, _Target, _abstract_name, _call_as, _check_tcp_port, _finish, _needs_ids, _read, _refuse_abstract_dgram, _unix_path, _unix_target


def h_connect(req):
    sock = _Target(req, 0, 1, 2)
    addr, pinned, judge = sock.addr, None, None
    if sock.family == AF_UNIX and sock.domain == AF_UNIX:
        path = _unix_path(addr)
        if path is not None:
            pinned, judge = _unix_target(req, sock, path, "connect")
        elif SUN_PATH_OFFSET < len(addr) <= SOCKADDR_UN and addr[SUN_PATH_OFFSET] == 0:
            # Abstract: Landlock scopes it in the target, but this connect
            # is the supervisor's, so the same judgement is made here.
            if sock.type == socket.SOCK_DGRAM:
                _refuse_abstract_dgram(addr, "connect")
            if os.stat(f"/proc/{req.tid}/ns/net").st_ino != os.stat("/proc/self/ns/net").st_ino:
                # The judged connection is the supervisor's, made in its own
                # network namespace: there the name would mean another
                # socket (and whether it exists is not the target's to learn).
                raise OSError(errno.ECONNREFUSED, "abstract name in another network namespace")
            judge = _Judge(req, _abstract_name(addr), errno.EPERM, "connect", signed_int(req.args[0]))
            judge.where = ("name", addr[SUN_PATH_OFFSET:])  # the name is all of sun_path the length covers
    elif sock.domain in (socket.AF_INET, socket.AF_INET6):
        if sock.family == socket.AF_UNSPEC and sock.type == socket.SOCK_STREAM:
            # A disconnect (a listener goes back to CLOSE): it never waits,
            # so it is made now, after its taint (listen.py).
            listen.taint_listening(req, sock.fd, "connect")
            return _finish(req, _Call("connect", sock.fd, addr), False)
        _check_tcp_port(req, sock)


        if sock.type == socket.SOCK_DGRAM:
            loopback.judge_datagram(req, sock, "connect")
        else:
            judge = loopback.stream_judge(req, sock)
            if judge is not None:
                return _finish(req, _Call("connect", sock.fd, addr, judge=judge), True)
    return _finish(req, _Call("connect", sock.fd, addr, pinned, judge=judge), sock.blocking)


def h_sendto(req):
    """sendto with a destination (the filter sends only those): on a unix
    datagram socket the address chooses the receiver. The data is read
    once and sent from here, like the address."""
    flags = signed_int(req.args[3])
    if flags & MSG_FASTOPEN:
        # The filter refuses it when there is no address (supervisor/table.py); with
        # one, the call comes here first and gets the same answer.
        raise OSError(errno.EOPNOTSUPP, "TCP Fast Open")
    sock = _Target(req, 0, 4, 5, socket_first=True)
    size = req.args[2]
    if sock.type == socket.SOCK_STREAM:
        size = min(size, DGRAM_MAX)  # a stream send may be partial: the caller sends the rest
    elif size > DGRAM_MAX:
        raise OSError(errno.EMSGSIZE, "datagram too large")
    data = _read(req, req.args[1], size)
    addr, pinned = sock.addr, None
    if sock.domain == AF_UNIX and sock.family == AF_UNIX and sock.type == socket.SOCK_DGRAM:
        path = _unix_path(addr)
        if path is not None:
            pinned, _ = _unix_target(req, sock, path, "sendto")  # a datagram is allowed or refused there
        elif SUN_PATH_OFFSET < len(addr) <= SOCKADDR_UN and addr[SUN_PATH_OFFSET] == 0:
            _refuse_abstract_dgram(addr, "sendto")
    elif sock.domain in (socket.AF_INET, socket.AF_INET6) and sock.type != socket.SOCK_STREAM:


        loopback.judge_datagram(req, sock, "sendto")
    # Tried without waiting first: a datagram almost never has to wait,
    # and then no thread is needed.
    call = _Call("sendto", sock.fd, addr, pinned, data=data, flags=flags | socket.MSG_DONTWAIT)
    try:
        value, err = _call_as(_needs_ids(req), lambda: call(req.sup.listener.fd))
    except BaseException:
        call.close()
        raise
    if err == errno.EAGAIN and sock.blocking and not flags & socket.MSG_DONTWAIT:
        call.flags = flags
        return _finish(req, call, True)
    call.close()
    if err:
        raise OSError(err, "sendto")
    return value
