"""A hard link of a file outside the project is made as a copy, with no
notice (`git clone` of a local path, `cp -al`, `ln`); a hard link of a
symlink outside is refused (invariant 3), and the notice says why, not how
to make the other place writable."""

from __future__ import annotations

from .conftest import supervised

from peninsula.supervisor.handlers.names import LINK_SOURCE


def test_link_of_an_outside_file_is_a_copy(term_factory, home, user):
    user.write(home / "out" / "object", "data\n")
    term = term_factory("bash")
    supervised(term)
    term.run("ln -s object ~/out/pointer")
    term.run("cd proj")
    term.prompt()
    text = term.run("ln ~/out/object here; ln -P ~/out/pointer pointer; echo more >> here")
    assert (home / "proj" / "here").read_text() == "data\nmore\n", text
    assert (home / "proj" / "here").stat().st_nlink == 1 and (home / "out" / "object").stat().st_nlink == 1
    assert (home / "out" / "object").read_text() == "data\n"
    assert not (home / "proj" / "pointer").is_symlink(), text
    notice = [line for line in text.splitlines() if line.startswith("peninsula: denied")]
    assert len(notice) == 1 and LINK_SOURCE in notice[0] and "pointer" in notice[0], text
    assert "peninsula allow" not in notice[0], text
    # Positive control: outside the project the same links are made.
    term.run("cd ~")
    term.prompt()
    term.run("ln ~/out/object ~/proj/there; ln -P ~/out/pointer ~/proj/pointer")
    assert (home / "proj" / "there").stat().st_nlink == 2
    assert (home / "proj" / "pointer").is_symlink()
