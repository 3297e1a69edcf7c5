"""What a mediated connect (and a trapped listen) costs: the same loop
unconfined and under `peninsula run`, in one run.

    .venv/bin/python bench/connect_cost.py [--rounds N] [--connects N]

Each round runs this file's --child loop plainly and confined, the order
alternating. The child listens on a unix stream socket and on 127.0.0.1
(so the listeners are in the confinement: a confined connect is judged
and allowed), accepts in a thread, and times N connects of each kind
(connect() alone, the socket made and closed outside the clock); before
that, N listen() calls on fresh bound TCP sockets. Prints the medians per call
over the rounds and the difference (the cost peninsula adds), and the
1-minute load average at the start and end.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

PENINSULA = [sys.executable, "-m", "peninsula"]  # the one this interpreter imports (PYTHONPATH: another checkout)


def _serve(server: socket.socket) -> None:
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        conn.close()


def _time(calls: int, make, act) -> float:
    """Median seconds of act(thing) over calls, thing = make() each time."""
    took = []
    for _ in range(calls):
        thing = make()
        start = time.perf_counter()
        act(thing)
        took.append(time.perf_counter() - start)
        thing.close()
    return statistics.median(took)


def child(calls: int, where: str) -> None:
    def bound():
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        return s

    # First, while no other thread of this process runs (it would take the
    # GIL while a call waits for the supervisor).
    out = {"tcp_listen": _time(calls, bound, lambda s: s.listen(8))}
    path = os.path.join(where, "bench.sock")
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(path)
    unix.listen(128)
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(128)
    address = tcp.getsockname()
    for server in (unix, tcp):
        threading.Thread(target=_serve, args=(server,), daemon=True).start()

    out["unix_connect"] = _time(calls, lambda: socket.socket(socket.AF_UNIX), lambda s: s.connect(path))
    out["tcp_connect"] = _time(calls, socket.socket, lambda s: s.connect(address))
    os.unlink(path)
    print(json.dumps(out))


def _run(argv: list[str]) -> dict:
    proc = subprocess.run(argv, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--connects", type=int, default=400)
    parser.add_argument("--child", metavar="DIR")
    args = parser.parse_args()
    if args.child:
        child(args.connects, args.child)
        return 0
    load = [os.getloadavg()[0]]
    results: dict[str, list[dict]] = {"plain": [], "peninsula": []}
    with tempfile.TemporaryDirectory(dir=os.path.expanduser("~")) as where:
        me = [sys.executable, os.path.abspath(__file__), "--connects", str(args.connects), "--child", where]
        for i in range(args.rounds):
            modes = ["plain", "peninsula"] if i % 2 == 0 else ["peninsula", "plain"]
            for mode in modes:
                argv = me if mode == "plain" else [*PENINSULA, "run", "--quiet", "--write", where, "--", *me]
                results[mode].append(_run(argv))
    load.append(os.getloadavg()[0])
    print(f"{args.rounds} rounds x {args.connects} calls; 1-min load {load[0]:.2f} at start, {load[1]:.2f} at end")
    print(f"{'call':14} {'plain us':>9} {'peninsula us':>13} {'added us':>9}")
    for key in ("unix_connect", "tcp_connect", "tcp_listen"):
        plain = statistics.median(r[key] for r in results["plain"]) * 1e6
        confined = statistics.median(r[key] for r in results["peninsula"]) * 1e6
        print(f"{key:14} {plain:9.1f} {confined:13.1f} {confined - plain:9.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
