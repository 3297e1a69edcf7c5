"""policy.protected_beneath: which names hold a protection beneath them."""

from peninsula.policy.engine import Policy, decide_write, protected_beneath

POL = Policy(
    writable=("/p",),
    protected=("/p/.git/hooks", "/p/cfg/*.pem", "!/p/cfg/ok.pem", "/p/undone", "!/p/undone", "/p/a/b"),
)


def test_plain_protection_beneath():
    assert protected_beneath(POL, "/p/.git") == "/p/.git/hooks"
    assert protected_beneath(POL, "/p") is not None
    assert protected_beneath(POL, "/") is not None
    assert protected_beneath(POL, "/p/.git/hooks") is None  # at it: protection_for's question
    assert protected_beneath(POL, "/p/.gi") is None
    assert protected_beneath(POL, "/p/.git/objects") is None
    assert protected_beneath(POL, "/p/a") == "/p/a/b"


def test_glob_protection_beneath():
    assert protected_beneath(POL, "/p/cfg") == "/p/cfg/*.pem"
    assert protected_beneath(POL, "/p/cfg/sub") == "/p/cfg/*.pem"  # '*' matches '/'
    assert protected_beneath(POL, "/p/cfgx") is None


def test_a_reallowed_plain_pattern_does_not_count():
    assert protected_beneath(Policy(writable=("/p",), protected=("/p/undone/x", "!/p/undone/x")), "/p/undone") is None


def test_dev_pts_itself_is_not_a_terminal():
    pol = Policy(writable=("/home/u",))
    assert decide_write(pol, "/dev/pts/3").allow
    assert not decide_write(pol, "/dev/pts").allow
