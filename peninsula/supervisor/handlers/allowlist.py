"""What a confined process may reach: the shipped and user socket and
loopback allow-lists, found when the supervisor starts.

Kept apart from sockets.py and loopback.py, which make the calls: every
start builds these lists, and importing those two modules (ipaddress,
request handling) cost a `peninsula run` some 5 ms before the command ran.
"""

from __future__ import annotations

import os
import re
import stat

from peninsula.policy import engine as policy


# -- the shipped allow-list ------------------------------------------------------------


def shipped_allowlist(env: dict | None = None) -> list[tuple[str, str, str]]:
    """(service, path, reason) of the sockets every confined process may
    reach: they sign, authenticate or log, and run nothing the caller
    chooses. Paths come from the environment the supervisor started with,
    never from a confined process."""
    env = os.environ if env is None else env
    out = []
    agent = env.get("SSH_AUTH_SOCK")
    if agent and agent.startswith("/"):
        out.append(("ssh-agent", agent, "signs with keys it holds and runs nothing the caller sends (git push over ssh)"))
    gpg = gpg_agent_socket(env)
    if gpg:
        out.append(("gpg-agent", gpg, "signs and decrypts with keys it holds; the caller cannot make it run code (git commit -S)"))
    for path in ("/dev/log", "/run/systemd/journal/socket"):
        out.append(("system log", path, "the system logger (root's) only stores what it is sent"))
    # getpwnam, getaddrinfo: without these, users from LDAP (sssd) or
    # systemd-userdb have no names, and lookups lose their cache.
    import glob

    for path in ("/run/nscd/socket", "/var/lib/sss/pipes/nss", "/run/systemd/resolve/io.systemd.Resolve",
                 *sorted(glob.glob("/run/systemd/userdb/*"))):
        out.append(("name service", path, "answers user, group and host lookups (the system's); runs nothing"))
    return out


def shipped_places(env: dict | None = None) -> list[tuple[str, str, str, str]]:
    """(service, place as shown, place, reason) of the agents' own places: a socket found
    there later (an ssh-agent or gpg-agent started after the supervisor,
    at a prompt outside projects) is allowed as the entries above are. Only
    the user's unconfined processes can put one there: every confined
    process is refused these places (defaults.PROTECTED_SOCKETS), and
    their directory must be the user's own, private, real directory.
    place is a regular expression for the socket's real location."""
    env = os.environ if env is None else env
    out = [("ssh-agent", "/tmp/ssh-*/agent.*", r"/tmp/ssh-[^/]+/agent\.[0-9]+",
            "an agent started outside the sandbox (`eval \"$(ssh-agent -s)\"`), in its own place: signs with keys it holds")]
    gpg = gpg_agent_socket(env)
    if gpg:
        out.append(("gpg-agent", gpg, re.escape(gpg), "gpg-agent's standard socket, also when the agent started later: "
                    "signs and decrypts with keys it holds"))
    return out


def _private_dir(path: str) -> bool:
    """path is a real directory of this user's that no one else may enter."""
    try:
        info = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid() and not info.st_mode & 0o077


def user_allowlist(patterns, origin: str) -> list[tuple[str, str, str]]:
    """Entries for the sockets the user allowed (globs expanded now)."""
    import glob

    out = []
    for pattern in patterns:
        for path in sorted(glob.glob(pattern)) if glob.has_magic(pattern) else [pattern]:
            out.append((policy.socket_service(path) or "socket", path, f"allowed by {origin} {pattern}"))
    return out


def gpg_agent_socket(env) -> str | None:
    """gpg-agent's standard socket for the home directory gpg would use
    (what `gpgconf --list-dirs agent-socket` prints, without its start-up
    cost): in the runtime dir when gpg's default home is used, else in the
    home directory itself (a non-standard GNUPGHOME gets no entry here)."""
    home = os.path.realpath(os.path.expanduser("~"))
    gnupg = env.get("GNUPGHOME") or os.path.join(home, ".gnupg")
    if os.path.realpath(gnupg) != os.path.join(home, ".gnupg"):
        return None
    runtime = f"/run/user/{os.getuid()}"
    if os.path.isdir(runtime):  # as gpg decides: the runtime dir, whether gnupg/ is made yet or not
        return runtime + "/gnupg/S.gpg-agent"
    return os.path.join(gnupg, "S.gpg-agent")


class AllowList:
    """The allowed sockets, by the device and inode found when the
    supervisor started: before any confined process could put something
    else under an allowed name (a hard link to the tmux socket in /tmp)."""

    def __init__(self, entries: list[tuple[str, str, str]], places: list[tuple[str, str, str, str]] = ()):
        self.entries: list[tuple[str, str, str]] = []
        self.inodes: dict[tuple[int, int], tuple[str, str, str]] = {}
        for entry in entries:
            self.add(*entry)
        self.places = [(service, re.compile(place), shown, reason) for service, shown, place, reason in places]

    def lookup(self, info: os.stat_result, place: str) -> tuple[str, str, str] | None:
        """The entry allowing the socket info, found at place (its real
        location): by its inode, or by an agent's own place."""
        entry = self.inodes.get((info.st_dev, info.st_ino))
        if entry is not None or not stat.S_ISSOCK(info.st_mode):
            return entry
        for service, pattern, _, reason in self.places:
            if pattern.fullmatch(place) and _private_dir(os.path.dirname(place)):
                return service, place, reason
        return None

    def add(self, service: str, path: str, reason: str) -> None:
        self.entries.append((service, path, reason))
        try:
            info = os.stat(path)
        except OSError:
            return  # not there now: not allowed later under that name
        if stat.S_ISSOCK(info.st_mode):
            self.inodes[(info.st_dev, info.st_ino)] = (service, path, reason)

    def describe(self) -> list[dict]:
        found = {path for _, path, _ in self.inodes.values()}
        return [{"service": s, "path": p, "reason": r, "present": p in found} for s, p, r in self.entries] + [
            {"service": s, "path": shown, "reason": r, "place": True} for s, _, shown, r in self.places]


# Ports every confined process may reach on this host: they answer and run
# nothing the caller sends.
SHIPPED_PORTS: dict[int, str] = {
    53: "DNS: a local resolver (systemd-resolved, dnsmasq) answers name lookups and runs nothing",
}


def shipped_ports(extra=(), origin: str = "") -> dict[int, str]:
    """The loopback allow-list: the shipped ports and the user's."""
    ports = dict(SHIPPED_PORTS)
    for port in extra:
        ports[int(port)] = f"allowed by {origin} {port}"
    return ports
