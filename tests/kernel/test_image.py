"""kernel/image.py: does a pid still run the program image we held?

exec keeps the pid. A held /proc/PID/mem fd reads 0 bytes once its mm is
gone, but any process reading /proc/PID/mem keeps a replaced mm alive (and
readable through our fd) while its read lasts: the control shows such a
pin holding, and the write-probe still says "changed". Run as root and as
a plain user (the probe needs only the ptrace access a parent of the same
user has)."""

from __future__ import annotations

from conftest import SYSTEM_PYTHON

PROBE = r"""
import os, sys, threading, time
from peninsula.kernel.image import Image

SIZE = 16 << 20
go_r, go_w = os.pipe()
pid = os.fork()
if pid == 0:
    import mmap
    big = mmap.mmap(-1, SIZE)
    big.write(b"x" * SIZE)
    os.read(go_r, 1)
    os.execv("/bin/sleep", ["sleep", "30"])
time.sleep(0.3)
while True:
    region = [line.split()[0].split("-") for line in open(f"/proc/{pid}/maps")
              if int(line.split("-")[1].split()[0], 16) - int(line.split("-")[0], 16) >= SIZE]
    if region:
        break
    time.sleep(0.05)
start = int(region[0][0], 16)
image = Image(pid)
print("same-before", image.unchanged(), image.unchanged())
pin = sys.argv[1] == "pin"
stop = []
if pin:
    fd = os.open(f"/proc/{pid}/mem", os.O_RDONLY)
    done = []
    def reader():
        buf = bytearray(SIZE)  # no allocation between reads: they overlap without a gap
        while not stop:
            os.preadv(fd, [buf], start)
            done.append(1)
    for _ in range(4):
        threading.Thread(target=reader, daemon=True).start()
    while len(done) < 8:  # every reader under way before the exec
        time.sleep(0.01)
os.write(go_w, b"g")
deadline = time.monotonic() + 20
while not os.readlink(f"/proc/{pid}/exe").endswith("sleep") and time.monotonic() < deadline:
    time.sleep(0.05)
time.sleep(0.1)
print("exe", os.readlink(f"/proc/{pid}/exe"))
print("old-fd-reads", os.pread(image.fd, 1, start))
print("same-after", image.unchanged())
stop.append(1)
print("new-image", Image(pid).unchanged())
os.kill(pid, 9)
"""


def _probe(who, mode):
    result = who.run([SYSTEM_PYTHON, "-c", PROBE, mode], timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout.decode()


def test_exec_is_seen(who):
    out = _probe(who, "plain")
    assert "same-before True True" in out, out  # control: the image held is recognised
    assert "exe /usr/bin/sleep" in out, out
    assert "old-fd-reads b''" in out, out
    assert "same-after False" in out, out
    assert "new-image True" in out, out


def test_exec_is_seen_while_a_reader_pins_the_old_memory(who):
    out = _probe(who, "pin")
    assert "same-before True True" in out, out
    assert "exe /usr/bin/sleep" in out, out
    assert "old-fd-reads b'x'" in out, out  # control: the pin holds; reading alone would be fooled
    assert "same-after False" in out, out
