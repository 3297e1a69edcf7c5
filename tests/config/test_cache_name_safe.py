"""A project's cache directory name keeps only safe characters: the hooks
read the cache paths from a NAME=VALUE file, so a newline in a project's
name (a confined process can make such a directory and mark it) must not
become a line, that is a variable, of its own (review of issue 13)."""

from peninsula.config import defaults


def test_a_newline_in_the_root_name_stays_in_one_line():
    root = "/home/u/proj/x\nPROMPT_COMMAND=touch ~/out/pwned\ny"
    path = defaults.project_cache(root)
    assert "\n" not in path and "=" not in path.rsplit("/", 1)[1], path
    assert path != defaults.project_cache("/home/u/proj/x_PROMPT_COMMAND_touch _/out/pwned_y")  # the hash tells them apart
    for _name, value in defaults.cache_env(root):
        assert "\n" not in value


def test_an_ordinary_name_is_kept():
    assert defaults.project_cache("/home/u/my-proj_1.2").rsplit("/", 1)[1].startswith("my-proj_1.2-")
