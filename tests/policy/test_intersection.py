"""The nested-run policy: Both(A, B) allows exactly what A and B both allow."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from peninsula.policy.engine import Both, Policy, decide_hardlinked_write, decide_write, writable_root

NAMES = ["a", "b", "c", ".git", "hooks", "x.sample", "ab", "tmp"]
segment = st.sampled_from(NAMES)
glob_segment = st.sampled_from(NAMES + ["*", "a*", "?", "*.sample"])
path = st.builds(lambda parts: "/" + "/".join(parts), st.lists(segment, min_size=1, max_size=5))
root = st.builds(lambda parts: "/" + "/".join(parts), st.lists(segment, min_size=1, max_size=3))
pattern = st.builds(lambda neg, parts: ("!" if neg else "") + "/" + "/".join(parts),
                    st.booleans(), st.lists(glob_segment, min_size=1, max_size=4))
policies = st.builds(
    lambda w, p, h: Policy(writable=tuple(w), protected=tuple(p), hardlinked_writes=h),
    st.lists(root, max_size=4), st.lists(pattern, max_size=4), st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(policies, policies, path)
def test_nested_allows_exactly_what_both_allow(a, b, where):
    nested = decide_write(Both(a, b), where)
    both = decide_write(a, where).allow and decide_write(b, where).allow
    assert nested.allow == both
    # A nested run's own writable root must also be one of the caller's to count.
    assert (writable_root(Both(a, b), where) is not None) == (
        writable_root(a, where) is not None and writable_root(b, where) is not None)


@settings(max_examples=200, deadline=None)
@given(policies, policies, policies, path)
def test_nesting_twice_is_never_laxer_than_any_level(a, b, c, where):
    if decide_write(Both(Both(a, b), c), where).allow:
        assert all(decide_write(p, where).allow for p in (a, b, c))
    assert decide_write(Both(Both(a, b), c), where).allow == decide_write(Both(a, Both(b, c)), where).allow


@given(policies, policies, st.integers(min_value=1, max_value=3))
def test_hardlinked_writes_need_both(a, b, nlink):
    nested = decide_hardlinked_write(Both(a, b), nlink).allow
    assert nested == (decide_hardlinked_write(a, nlink).allow and decide_hardlinked_write(b, nlink).allow)


def test_a_refusal_by_the_nested_run_says_so():
    outer = Policy(writable=("/home/u/p",))
    inner = Policy(writable=("/home/u/p/sub",))
    assert decide_write(Both(outer, inner), "/home/u/p/sub/in").allow
    refused = decide_write(Both(outer, inner), "/home/u/p/x")
    assert not refused.allow and "nested run" in refused.reason
    # The caller's refusal comes first, in the caller's words.
    wider = Policy(writable=("/home/u",))
    refused = decide_write(Both(outer, wider), "/home/u/outside")
    assert not refused.allow and refused.reason == "outside every writable root"
