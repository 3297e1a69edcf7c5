"""TCP and UDP to this host (loopback, 0.0.0.0, the host's own addresses):
whom a confined socket reaches.

A listener on 127.0.0.1 that runs what it receives (a debug port, a
Jupyter kernel, a docker TCP socket, `socat ... EXEC:sh`) would act for a
confined process with the user's full rights, exactly as a unix socket
service would (sockets.py). So a connect to a local address is allowed
only when the socket at the other end belongs to the caller's confinement,
or its port is on the loopback allow-list; the answer to a refused one is
EACCES, as for a unix socket and as Landlock's TCP rule answers.

Who is at the other end comes from the kernel, never from the target:

- TCP: the supervisor connects a fresh socket of its own to the address
  read once (sockets._Judge, as for unix streams), and finds the other end
  of that connection with sock_diag (an exact lookup by its four-tuple).
  An accepted end is judged by the processes that hold its inode; one not
  yet accepted sits on the queue of a listener that has listened since it
  arrived (a listener that closes resets its queue), so every listener the
  connection could have reached (same port, its address or a wildcard,
  SO_REUSEPORT groups included) is judged by the processes holding it, and
  the end is looked up again afterwards (accepted meanwhile: judged by its
  holder). Only an allowed connection is installed in the target, at its
  fd number (SECCOMP_ADDFD_FLAG_SETFD); a refused one is closed without a
  byte.
- UDP: every socket bound to the destination port (its address or a
  wildcard) must be held inside, judged before the supervisor connects or
  sends on the target's socket with the address it read.

"Held inside": every process found holding the socket's inode in its fd
table (a scan of /proc) is in the caller's confinement (sup.listener_inside,
the same judgement as a unix socket's listener), and there is at least one.
Processes whose fd tables the supervisor cannot read are not seen: none
outside its own Landlock domain (Landlock refuses it every process outside
that domain, whatever its user), nor other users' for a supervisor that is
not root. So a listener counts as inside only if, besides, a process of
the caller's confinement made it listen (its SO_COOKIE recorded by the
trapped listen(), listen.py): an outside server's listening fd leaked into
the sandbox (socket activation, a missing CLOEXEC) was made to listen
outside, and is refused (tests/sandbox/test_loopback_leaked.py). A UDP
socket listens to nobody's call: its holders in sight are all there is.

A destination is local when it is loopback or unspecified, or when a
datagram socket can be bound to it (the kernel's own test for a local
address; with net.ipv4.ip_nonlocal_bind set every address passes and a
remote connect is refused, which fails closed).
"""

from __future__ import annotations

import errno
import ipaddress
import os
import select
import socket
import struct
import time

from peninsula.kernel import target
from peninsula.supervisor.handlers import listened, sockets
from peninsula.supervisor.handlers.request import Denied

TCP_LISTEN, TCP_NEW_SYN_RECV = 10, 12
# The states of a connection's end that no process has accepted yet
# (ESTABLISHED, SYN_RECV, CLOSE_WAIT, NEW_SYN_RECV); one that is closed by
# its process (FIN_WAIT*, CLOSING, LAST_ACK, TIME_WAIT) has no inode either.
QUEUED = (1, 3, 8, TCP_NEW_SYN_RECV)
INET_DIAG_NOCOOKIE = 0xFFFFFFFF
IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_UDPLITE = 1, 58, 136
SO_PROTOCOL = 38
TRIAL_MS = 5  # how long the supervisor's loop waits for a loopback handshake
SETTLE_S = 0.005  # how long an accepted end held by no process in sight may take to be released
V4_MAPPED = b"\0" * 10 + b"\xff\xff"
_REQ = struct.Struct("=BBBBI")  # inet_diag_req_v2 up to its socket id
_SOCKID = struct.Struct("!HH16s16s")  # ports and addresses, network order
_MSG = struct.Struct("=BBBB")  # inet_diag_msg up to its socket id
_TAIL = struct.Struct("=IIIII")  # expires, rqueue, wqueue, uid, inode

# -- the destination -------------------------------------------------------------------


def destination(family: int, addr: bytes) -> tuple[bytes, int, int] | None:
    """(address as 4 or 16 bytes, port, scope id) of an AF_INET/AF_INET6
    address read from the target, None when too short (the kernel
    answers it). A v4-mapped IPv6 address is the IPv4 one it maps."""
    if family == socket.AF_INET and len(addr) >= 16:
        return addr[4:8], struct.unpack_from("!H", addr, 2)[0], 0
    if family == socket.AF_INET6 and len(addr) >= 24:
        ip = addr[8:24]
        scope = struct.unpack_from("=I", addr, 24)[0] if len(addr) >= 28 else 0
        port = struct.unpack_from("!H", addr, 2)[0]
        return (ip[12:], port, 0) if ip.startswith(V4_MAPPED) else (ip, port, scope)
    return None


def is_local(ip: bytes, scope: int) -> bool:
    """Whether a connection to ip stays on this host."""
    if len(ip) == 4:
        if ip[0] == 127 or ip == b"\0\0\0\0":
            return True
        family, where = socket.AF_INET, (socket.inet_ntop(socket.AF_INET, ip), 0)
    else:
        if ip in (b"\0" * 15 + b"\1", b"\0" * 16):
            return True
        family, where = socket.AF_INET6, (socket.inet_ntop(socket.AF_INET6, ip), 0, 0, scope)
    probe = socket.socket(family, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
    try:
        probe.bind(where)
        return True
    except OSError:
        return False
    finally:
        probe.close()


def shown(ip: bytes, port: int, proto: str) -> str:
    return f"{ipaddress.ip_address(ip).compressed}:{port} ({proto})" if len(ip) == 4 else \
        f"[{ipaddress.ip_address(ip).compressed}]:{port} ({proto})"


SO_NETNS_COOKIE = 71  # Linux 5.14; unprivileged, unlike SIOCGSKNS
_OWN_NETNS: list[int] = []


def _netns_cookie(fd: int) -> int:
    with socket.socket(fileno=os.dup(fd)) as sock:
        return struct.unpack("=Q", sock.getsockopt(socket.SOL_SOCKET, SO_NETNS_COOKIE, 8))[0]


def same_netns(fd: int) -> bool:
    """Whether the socket lives in the supervisor's network namespace (the
    one its sock_diag queries and its own sockets see): the socket's own,
    not its caller's."""
    if not _OWN_NETNS:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as mine:
            _OWN_NETNS.append(_netns_cookie(mine.fileno()))
    try:
        return _netns_cookie(fd) == _OWN_NETNS[0]
    except OSError:
        return False


def _foreign(req, name: str, op: str) -> None:
    """A socket in another network namespace: this host's services are not
    on its loopback. A run's own (--unshare-net) namespace holds only the
    run's processes, and the call is made there as given; any other may
    be one an outside process listens in (a container's), and is refused."""
    if not getattr(req.sup, "own_netns", False):
        raise Denied(errno.EACCES, name, "the socket is in another network namespace, where its peer cannot be judged", op)


# -- sock_diag ---------------------------------------------------------------------------


def _pad(ip: bytes) -> bytes:
    return ip + b"\0" * (16 - len(ip))


def _query(family: int, proto: int, states: int, sockid: bytes, dump: bool) -> list[tuple]:
    """(state, local ip, local port, uid, inode, cookie) of the sockets the
    kernel reports (addresses of AF_INET ones as 4 bytes, v4-mapped ones too)."""
    body = _REQ.pack(family, proto, 0, 0, states) + sockid
    out = []
    try:
        for data, at in listened.diag_messages(body, listened.NLM_F_REQUEST | (listened.NLM_F_DUMP if dump else 0)):
            fam, state, _, _ = _MSG.unpack_from(data, at)
            port, _, src, _ = _SOCKID.unpack_from(data, at + 4)
            uid, inode = _TAIL.unpack_from(data, at + 4 + 48)[3:]
            low, high = struct.unpack_from("=II", data, at + 4 + 40)
            ip = src[:4] if fam == socket.AF_INET else (src[12:] if src.startswith(V4_MAPPED) else src)
            out.append((state, ip, port, uid, inode, low | high << 32))
    except OSError as err:
        if err.errno not in (0, errno.ENOENT):
            raise
    return out


_ANY_SOCKID = _SOCKID.pack(0, 0, b"", b"") + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)


def listeners(family: int) -> list[tuple]:
    """Every listening TCP socket of family (_query's tuples)."""
    return _query(family, socket.IPPROTO_TCP, 1 << TCP_LISTEN, _ANY_SOCKID, True)


def bound(proto: int, states: int, ip: bytes, port: int) -> list[tuple]:
    """The sockets of proto in states bound to port at ip or at a
    wildcard, both families (a dual-stack socket reaches IPv4)."""
    wild = (b"\0" * 4, b"\0" * 16)
    found = []
    for family in (socket.AF_INET, socket.AF_INET6):
        for entry in _query(family, proto, states, _SOCKID.pack(0, 0, b"", b"") + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE), True):
            if entry[2] == port and (entry[1] == ip or entry[1] in wild or ip in wild):
                found.append(entry)
    return found


def other_end(local: tuple[bytes, int], peer: tuple[bytes, int]) -> tuple | None:
    """The socket at the other end of a TCP connection on this host (its
    local address is our peer, its remote is our local), None if none."""
    family = socket.AF_INET if len(peer[0]) == 4 else socket.AF_INET6
    sockid = _SOCKID.pack(peer[1], local[1], _pad(peer[0]), _pad(local[0])) + struct.pack("=III", 0, INET_DIAG_NOCOOKIE, INET_DIAG_NOCOOKIE)
    for entry in _query(family, socket.IPPROTO_TCP, 0xFFFFFFFF, sockid, False):
        if entry[0] != TCP_LISTEN:  # no connection found: the kernel names a listener instead
            return entry
    return None


# -- who holds a socket ----------------------------------------------------------------


def _scan(pids, wanted: dict[str, int], found: dict[int, set[int]], where: dict | None = None) -> None:
    """Add to found[inode] the pids whose fd tables hold it (and to where,
    the fd number it was seen at)."""
    me = os.getpid()
    for pid in pids:
        if pid == me:
            continue
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            inode = wanted.get(link)
            if inode is not None:
                found[inode].add(pid)
                if where is not None:
                    where[(inode, pid)] = fd


def holders(inodes: set[int], where: dict | None = None) -> dict[int, set[int]]:
    """For each socket inode, the processes whose fd tables hold it (those
    this process may read): a scan of every process."""
    found: dict[int, set[int]] = {inode: set() for inode in inodes}
    _scan((int(n) for n in os.listdir("/proc") if n.isdigit()), {f"socket:[{i}]": i for i in inodes}, found, where)
    return found


def _still_holds(pid: int, start: int, fd: str, inode: int) -> bool:
    """pid is the process seen holding inode at fd, and still does (the
    start time read after the link: a reused pid differs in it)."""
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]" and target.start_time(pid) == start
    except OSError:
        return False


# A listening socket's holders, found by a full scan: (pid, start time)
# pairs. A socket gains a holder only from one (fork, fd passing), so while
# each is alive and holds it, a new holder could only have it from them;
# handing it out of the confinement is no more in a confined process's
# power than it is for a unix listener.
_HELD: dict[int, frozenset[tuple[int, int, str]]] = {}


def listener_holders(inodes: set[int]) -> dict[int, set[int]]:
    """holders() for listening sockets, from the last scan while every
    holder then found still holds it."""
    found: dict[int, set[int]] = {}
    for inode in inodes:
        known = _HELD.get(inode)
        if not known or not all(_still_holds(pid, start, fd, inode) for pid, start, fd in known):
            break
        found[inode] = {pid for pid, _, _ in known}
    else:
        return found
    where: dict = {}
    found = holders(inodes, where)
    if not all(found.values()):
        # The /proc listing is a snapshot: a holder that forked and closed
        # its copy meanwhile is seen on a second look.
        where.clear()
        found = holders(inodes, where)
    for inode, pids in found.items():
        seen = set()
        for pid in pids:
            try:
                seen.add((pid, target.start_time(pid), where[(inode, pid)]))
            except OSError:
                pass
        _HELD[inode] = frozenset(seen)
    if len(_HELD) > 4096:
        _HELD.clear()
    return found


def outsiders(sup, tgid: int, held: dict[int, set[int]], lock=None) -> list[int] | None:
    """None when every socket in held (inode: its holders) is held by some
    process and every holder found is of caller tgid's confinement (the
    holders found are those the supervisor can see: module docstring);
    else the processes that are not (an empty list: no socket, or one
    nobody visible holds)."""
    if not held:
        return []
    bad: list[int] = []
    for inode, pids in held.items():
        if not pids:
            return []
        for pid in pids:
            if lock is not None:
                with lock:
                    inside = sup.listener_inside(tgid, pid)
            else:
                inside = sup.listener_inside(tgid, pid)
            if not inside:
                bad.append(pid)
    return bad or None


def who(pids: list[int], what: str) -> str:
    if not pids:
        return f"{what} is held by no process in this confinement"
    names = ", ".join(f"{target.comm(pid)} (pid {pid})" for pid in sorted(pids)[:3])
    return f"{what} is held by {names}, outside this confinement"


def reason(sup, port: int, text: str) -> str:
    hint = getattr(sup, "loopback_hint", None)
    return text + ("; allow with " + hint.replace("{port}", str(port)) if hint else "")


# -- the judgements ----------------------------------------------------------------------


def _v6only(fd: int) -> bool:
    with socket.socket(fileno=os.dup(fd)) as probe:
        return bool(probe.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY))


def used_family(sock, op: str, number: int) -> int | None:
    """The family the kernel reads sock.addr as, for a connect or an
    addressed send on an AF_INET/AF_INET6 socket of protocol number (the
    socket's domain decides, not the address); None when the kernel
    refuses the address (EAFNOSUPPORT, EINVAL, ENETUNREACH) or uses none
    (an AF_UNSPEC connect disconnects)."""
    family = sock.family
    if sock.domain == socket.AF_INET:
        # udp_sendmsg and raw_sendmsg take an AF_UNSPEC address as IPv4.
        if family == socket.AF_UNSPEC and op == "sendto":
            return socket.AF_INET
        return family if family == socket.AF_INET else None
    if sock.domain != socket.AF_INET6:
        return None
    if family == socket.AF_INET:
        # A UDP (and SCTP) socket of AF_INET6 sends and connects to an
        # AF_INET address as IPv4 unless it is v6-only (the kernel refuses
        # it then: ENETUNREACH on sendto, EAFNOSUPPORT on connect); TCP
        # refuses it (EAFNOSUPPORT), and so do ping and raw sockets, whose
        # local destinations are refused below anyway.
        if number == socket.IPPROTO_TCP or _v6only(sock.fd):
            return None
        return socket.AF_INET
    if family == socket.AF_UNSPEC and op == "sendto" and number not in (socket.IPPROTO_UDP, IPPROTO_UDPLITE):
        return socket.AF_INET6  # rawv6_sendmsg reads it as IPv6; udpv6_sendmsg ignores it (sends to its peer)
    return family if family == socket.AF_INET6 else None


def _protocol(fd: int) -> int:
    with socket.socket(fileno=os.dup(fd)) as probe:
        return probe.getsockopt(socket.SOL_SOCKET, SO_PROTOCOL)


def judge_datagram(req, sock, op: str) -> None:
    """A UDP connect or addressed send to this host: every socket bound
    where it goes must be held inside (none bound: nothing receives)."""
    number = _protocol(sock.fd)
    family = used_family(sock, op, number)
    dest = destination(family, sock.addr) if family is not None else None
    if dest is None:
        return
    ip, port, scope = dest
    if not is_local(ip, scope):
        return
    if sock.type == socket.SOCK_DGRAM and number in (IPPROTO_ICMP, IPPROTO_ICMPV6):
        return  # ping: the kernel answers, no process receives
    name = shown(ip, port, "udp")
    if port in req.sup.loopback_ports:
        return
    if not same_netns(sock.fd):
        return _foreign(req, name, op)
    if sock.type != socket.SOCK_DGRAM or number not in (socket.IPPROTO_UDP, IPPROTO_UDPLITE):
        raise Denied(errno.EACCES, name, "only TCP and UDP to this host are judged; other protocols are refused", op)
    receivers = {r[4] for r in bound(number, 0xFFFFFFFF, ip, port)}
    bad = outsiders(req.sup, req.tgid, listener_holders(receivers)) if receivers else None  # none bound: nothing receives
    if bad is not None:
        raise Denied(errno.EACCES, name, reason(req.sup, port, who(bad, "the receiving socket")), op)


def stream_judge(req, sock):
    """A judge (sockets._Judge) for a TCP connect to this host, None when
    the destination is elsewhere or the port is allowed (then the connect
    is made as given, with the address read once)."""
    number = _protocol(sock.fd)
    family = used_family(sock, "connect", number)
    dest = destination(family, sock.addr) if family is not None else None
    if dest is None:
        return None
    ip, port, scope = dest
    if not is_local(ip, scope) or port in req.sup.loopback_ports:
        return None
    name = shown(ip, port, "tcp")
    if not same_netns(sock.fd):
        return _foreign(req, name, "connect")
    if sock.type != socket.SOCK_STREAM or number != socket.IPPROTO_TCP:
        raise Denied(errno.EACCES, name, "only TCP and UDP to this host are judged; other protocols are refused", "connect")
    return LoopbackJudge(req, name, errno.EACCES, "connect", _int_fd(req), port)


def _int_fd(req) -> int:
    from peninsula.supervisor.handlers.request import signed_int

    return signed_int(req.args[0])


class LoopbackJudge(sockets._Judge):
    """The TCP form of the unix stream judge: a fresh socket of the
    supervisor's is connected to the address read once, its other end is
    judged, and only an allowed connection is installed in the target."""

    def __init__(self, req, name: str, err: int, op: str, number: int, port: int):
        super().__init__(req, name, err, op, number)
        self.port = port

    def connect(self, fd: int, addr: bytes, listener_fd: int, threaded: bool, trial: bool = False) -> int:
        theirs = socket.socket(fileno=os.dup(fd))
        try:
            state = sockets._state_error(theirs)
            if state:
                return state
            fresh = _fresh_tcp(theirs)
            blocking = os.get_blocking(fd)
        finally:
            theirs.close()
        try:
            cloexec = sockets._cloexec(self.tid, self.number)
            # Connected to the end even for a non-blocking target: it gets a
            # finished connection (0), which a non-blocking connect may give.
            # A trial waits briefly (a loopback handshake takes
            # microseconds), else the connect is made again in a thread.
            if trial:
                fresh.setblocking(False)
            err = sockets._raw_connect(fresh.fileno(), addr)
            if trial and err == errno.EINPROGRESS:
                ready = select.poll()
                ready.register(fresh.fileno(), select.POLLOUT)
                if not ready.poll(TRIAL_MS):
                    return sockets.WOULD_WAIT
                err = fresh.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                return err
            lock = getattr(self.sup, "lock", None) if threaded else None
            why = connection_verdict(self.sup, self.tgid, fresh, lock)
            if why is not None:
                self.sup.notices.record(self.tid, self.tgid, Denied(self.err, self.shown, reason(self.sup, self.port, why), self.op))
                return self.err
            os.set_blocking(fresh.fileno(), blocking)
            sockets._set_fd(listener_fd, self.req_id, fresh.fileno(), self.number, cloexec)
            return 0
        finally:
            fresh.close()


_DEFAULTS: dict[int, list] = {}


def _defaults(fresh: socket.socket) -> list:
    """The socket options of a new TCP socket of fresh's family, as this
    kernel makes it (sockets._defaults reads them for unix sockets)."""
    found = _DEFAULTS.get(fresh.family)
    if found is None:
        found = []
        for opt in sockets._COPIED_INT_OPTIONS + sockets._COPIED_BUFFERS:
            try:
                found.append((opt, 0, fresh.getsockopt(socket.SOL_SOCKET, opt)))
            except OSError:
                pass
        for opt, size in sockets._COPIED_STRUCTS:
            found.append((opt, size, fresh.getsockopt(socket.SOL_SOCKET, opt, size)))
        _DEFAULTS[fresh.family] = found
    return found


# TCP options a client sets before connect that the fresh socket carries.
_TCP_OPTIONS = (socket.TCP_NODELAY, socket.TCP_KEEPIDLE, socket.TCP_KEEPINTVL, socket.TCP_KEEPCNT,
                socket.TCP_USER_TIMEOUT, socket.TCP_SYNCNT)


def _fresh_tcp(theirs: socket.socket) -> socket.socket:
    """A new blocking TCP socket of the target's family with its socket
    and TCP options, and IPV6_V6ONLY (a v6-only socket cannot reach a
    v4-mapped address). (A local address the target bound is not carried.)"""
    fresh = socket.socket(theirs.family, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
    try:
        for opt, size, default in _defaults(fresh):
            value = theirs.getsockopt(socket.SOL_SOCKET, opt, size) if size else theirs.getsockopt(socket.SOL_SOCKET, opt)
            if value != default:
                fresh.setsockopt(socket.SOL_SOCKET, opt, value // 2 if opt in sockets._COPIED_BUFFERS else value)
        for level, opt in [(socket.IPPROTO_TCP, opt) for opt in _TCP_OPTIONS] + (
                [(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)] if theirs.family == socket.AF_INET6 else []):
            value = theirs.getsockopt(level, opt)
            if value != fresh.getsockopt(level, opt):
                fresh.setsockopt(level, opt, value)
    except BaseException:
        fresh.close()
        raise
    return fresh


def connection_verdict(sup, tgid: int, conn: socket.socket, lock) -> str | None:
    """None when the TCP connection conn (the supervisor's, just made)
    ends at a socket of caller tgid's confinement, else why not."""
    local, peer = _addr(conn.getsockname()), _addr(conn.getpeername())
    end = None
    for _ in range(50):  # our handshake's last ACK may still be on its way to the other end
        end = other_end(local, peer)
        if end is not None:
            break
        time.sleep(0.0002)
    judged = None  # the listeners it could have reached, once judged
    near = None  # where an accepted end is looked for first: those listeners' holders
    scanned = False  # the accepted end looked for in every fd table, once
    settled = None  # when to stop waiting for an accepted end's holder to appear or let go
    for _ in range(40):
        if end is None:
            return "no socket of this host is at the other end of the connection"
        state, inode = end[0], end[4]
        if inode == 0:
            if state not in QUEUED:
                return None  # accepted and closed since: no process can read from it
            if judged is not None:
                # Still waiting on a listener judged inside (one that closes
                # resets its queue); with none found, on one not seen.
                return None if judged else who([], "the listening socket")
            reachable = bound(socket.IPPROTO_TCP, 1 << TCP_LISTEN, peer[0], peer[1])
            # Its holders in sight are not enough: one outside the
            # supervisor's Landlock domain is not seen (listen.py).
            if not all(listened.listened_inside(sup, tgid, e[5], lock) for e in reachable):
                return "the listening socket was not made to listen by a process of this confinement"
            judged = listener_holders({e[4] for e in reachable})
            bad = outsiders(sup, tgid, judged, lock) if judged else []
            if bad:
                return who(bad, "the listening socket")
            if bad == []:
                # No listener, or none with a holder in sight (one exiting
                # after it accepted): what the end is now decides, and one
                # still waiting is refused.
                judged = {}
        else:
            # Accepted (perhaps by a one-shot listener that closed since):
            # judged by who holds it, looked for first where the listeners
            # are (their holders are kept between connects: listener_holders),
            # so a quiet machine, where the end is accepted before the first
            # look, does not scan every fd table each time.
            if near is None:
                near = judged if judged is not None else listener_holders(
                    {e[4] for e in bound(socket.IPPROTO_TCP, 1 << TCP_LISTEN, peer[0], peer[1])})
            held: dict[int, set[int]] = {inode: set()}
            _scan({pid for pids in near.values() for pid in pids}, {f"socket:[{inode}]": inode}, held)
            if not held[inode] and not scanned:
                scanned = True
                held = holders({inode})
            if held[inode]:
                bad = outsiders(sup, tgid, held, lock)
                return None if bad is None else who(bad, "the accepted connection")
            # Held by no process in sight: one exiting has left its fd table
            # but not yet released the socket (the release runs later in
            # exit; then the end has no inode and is allowed above), or one
            # the supervisor cannot see holds it (Landlock keeps it from
            # every fd table outside its domain). Only the end is looked at
            # again, for SETTLE_S: each full scan costs milliseconds of the
            # supervisor's loop, and a holder unseen once stays unseen.
            now = time.monotonic()
            if settled is None:
                settled = now + SETTLE_S
            elif now >= settled:
                break
            time.sleep(0.0002)
        end = other_end(local, peer)  # closed meanwhile? what it is now
    return who([], "the accepted connection")


def _addr(sockaddr) -> tuple[bytes, int]:
    host, port = sockaddr[0], sockaddr[1]
    if ":" in host:
        ip = socket.inet_pton(socket.AF_INET6, host.split("%", 1)[0])
        return (ip[12:] if ip.startswith(V4_MAPPED) else ip), port
    return socket.inet_pton(socket.AF_INET, host), port
