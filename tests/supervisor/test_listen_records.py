"""listen.py's tables (records.Records) are pruned of sockets gone only
when they have doubled, with one sock_diag dump: what is pruned, what is
kept, and that the pruning is not paid at every insert. Real sockets; a
small limit stands in for MAX_ENTRIES."""

from __future__ import annotations

import os
import socket

from peninsula.supervisor.handlers import listen
from peninsula.supervisor.handlers.listened import unix_sockets
from peninsula.supervisor.handlers.records import Records


def test_pruned_only_when_doubled():
    table, asked = Records(4), []

    def still_live():
        asked.append(len(table))
        return lambda key, _: key % 2 == 0  # the odd ones are gone

    for key in range(12):
        table.put(key, None, still_live)
    # Key 4: 2 entries left, the limit stays 4; key 6: 3 left, limit 6;
    # key 9: 5 left, limit 10; keys 10 and 11 are put without pruning.
    assert asked == [4, 4, 6]
    assert sorted(table) == [0, 2, 4, 6, 8, 9, 10, 11] and table.limit == 10


def test_all_live_doubles_the_limit():
    table, asked = Records(4), []
    for key in range(20):
        table.put(key, None, lambda: asked.append(len(table)) or (lambda key, _: True))
    assert asked == [4, 8, 16] and table.limit == 32 and len(table) == 20


def test_unix_records_pruned_of_closed_sockets():
    class Sup:
        unix_listened = Records(2)

        def confinement_of(self, tgid):
            return "inside"

    sup = Sup()
    socks = []
    for n in range(3):
        s = socket.socket(socket.AF_UNIX)
        s.bind(f"\0peninsula-test-records-{os.getpid()}-{n}")
        listen._record_unix(sup, s.fileno(), s, os.getpid())
        s.listen(1)
        socks.append(s)
        if n == 0:
            gone = s.getsockname()
            s.close()  # its record is dropped at the next pruning
    names = sorted(where[1] for where in sup.unix_listened)
    assert names == sorted(s.getsockname() for s in socks[1:]) and gone not in names
    assert (os.fstat(socks[1].fileno()).st_ino, listen.cookie(socks[1])) in unix_sockets()


def test_taints_of_listening_sockets_dropped_first():
    listening, closed = socket.socket(), socket.socket()
    for s in (listening, closed):
        s.bind(("127.0.0.1", 0))
        s.listen(1)
    closed.shutdown(socket.SHUT_RDWR)  # back to CLOSE: its taint must stay
    table = Records(2)
    keys = [listen.cookie(listening), listen.cookie(closed)]
    for key in keys:
        table.put(key, None, listen._not_listening)
    table.put(0, None, listen._not_listening)  # pruned now
    assert sorted(table) == sorted([0, keys[1]])
