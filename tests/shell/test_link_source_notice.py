"""A hard link of a regular file outside the project fails with EXDEV, as
between two file systems, with no notice (`git clone` of a local path then
copies); a hard link of a symlink outside is refused (invariant 3), and
the notice says why and what works (a copy), not how to make the other
place writable."""

from __future__ import annotations

from .conftest import supervised

from peninsula.supervisor.handlers.names import LINK_SOURCE


def test_link_of_an_outside_file_says_a_copy_works(term_factory, home, user):
    user.write(home / "out" / "object", "data\n")
    term = term_factory("bash")
    supervised(term)
    term.run("ln -s object ~/out/pointer")
    term.run("cd proj")
    term.prompt()
    text = term.run("ln ~/out/object here; ln -P ~/out/pointer pointer; cp ~/out/object copied")
    assert not (home / "proj" / "here").exists(), text
    assert "Invalid cross-device link" in text, text
    assert not (home / "proj" / "pointer").is_symlink(), text
    assert (home / "proj" / "copied").read_text() == "data\n"
    notice = [line for line in text.splitlines() if line.startswith("peninsula: denied")]
    assert len(notice) == 1 and LINK_SOURCE in notice[0] and "pointer" in notice[0], text
    assert "peninsula allow" not in notice[0], text
    # Positive control: outside the project the same links are made.
    term.run("cd ~")
    term.prompt()
    term.run("ln ~/out/object ~/proj/here; ln -P ~/out/pointer ~/proj/pointer")
    assert (home / "proj" / "here").stat().st_nlink == 2
    assert (home / "proj" / "pointer").is_symlink()
