"""The pure parts of privileged.py: which programs gain privilege by exec,
and the environment they get."""

import os
import stat

from peninsula.shell.privileged import gains_privilege, outside_env, shim_dir


def _fd_of(path):
    return os.open(path, os.O_RDONLY | os.O_CLOEXEC)


def test_setuid_root_program_gains_privilege():
    fd = _fd_of("/usr/bin/sudo")
    try:
        assert os.fstat(fd).st_mode & stat.S_ISUID  # the premise
        assert gains_privilege(fd)
    finally:
        os.close(fd)


def test_plain_program_and_setgid_without_group_exec_do_not(tmp_path):
    fd = _fd_of("/usr/bin/true")
    try:
        assert not gains_privilege(fd)
    finally:
        os.close(fd)
    # setgid without group execute marks mandatory locking, not privilege.
    path = tmp_path / "locking"
    path.write_bytes(b"")
    os.chmod(path, 0o2704)
    fd = _fd_of(path)
    try:
        assert not gains_privilege(fd)
        os.chmod(path, 0o2714)
        assert gains_privilege(fd)
    finally:
        os.close(fd)


def test_directory_does_not(tmp_path):
    os.chmod(tmp_path, 0o4755)
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        assert not gains_privilege(fd)
    finally:
        os.close(fd)


def test_outside_env_is_the_environment_without_peninsula():
    session = "/run/user/1000/peninsula/42-1"
    env = {"PATH": f"{shim_dir(session)}:/usr/bin:/bin", "PENINSULA_SESSION": "42-1",
           "PENINSULA_SESSION_DIR": session, "PENINSULA_SHELL_PID": "43", "HOME": "/home/u"}
    assert outside_env(env, session) == {"PATH": "/usr/bin:/bin", "HOME": "/home/u"}
