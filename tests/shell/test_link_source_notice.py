"""A hard link of a file outside the project is refused (invariant 3), and
the notice says why and what works (a copy), not how to make the other
place writable (`git clone` of a local path meets this once, then copies)."""

from __future__ import annotations

from .conftest import supervised

from peninsula.supervisor.handlers.names import LINK_SOURCE


def test_link_of_an_outside_file_says_a_copy_works(term_factory, home, user):
    user.write(home / "out" / "object", "data\n")
    term = term_factory("bash")
    supervised(term)
    term.run("cd proj")
    term.prompt()
    text = term.run("ln ~/out/object here; cp ~/out/object copied")
    assert not (home / "proj" / "here").exists(), text
    assert (home / "proj" / "copied").read_text() == "data\n"
    notice = [line for line in text.splitlines() if line.startswith("peninsula: denied link")]
    assert len(notice) == 1 and LINK_SOURCE in notice[0] and "peninsula allow" not in notice[0], text
    # Positive control: outside the project the same link is made.
    term.run("cd ~")
    term.prompt()
    term.run("ln ~/out/object ~/proj/here")
    assert (home / "proj" / "here").stat().st_nlink == 2
