"""User config: values, and errors that name file and line."""

import pytest

from peninsula.config.options import ConfigError
from peninsula.config.user import UserConfig, parse_user_config


def test_defaults_and_values(tmp_path):
    conf = parse_user_config(
        '# comment\nwrite = ["~/.cache/pip"]\nbaseline = ["/srv"]\n[projects]\ndirenv = false\nmarkers = ["devenv.nix"]\n',
        str(tmp_path / "config.toml"),
    )
    assert conf.write[0].endswith("/.cache/pip") and conf.write[0].startswith("/")
    assert conf.baseline == ("/srv",)
    assert conf.direnv is False and conf.markers == ("devenv.nix",)
    assert UserConfig().direnv is True


@pytest.mark.parametrize(
    "text, line, words",
    [
        ("write = []\nbogus = 1\n", 2, "unknown key 'bogus'"),
        ("write = 3\n", 1, "must be a list"),
        ("[projects]\n\nmarkers = ['a/b']\n", 3, "file names"),
        ("[projects]\nnope = true\n", 2, "unknown key 'projects.nope'"),
        ("best_effort = 'yes'\n", 1, "true or false"),
        ("write = [\n", None, ""),
    ],
)
def test_errors_name_file_and_line(tmp_path, text, line, words):
    name = str(tmp_path / "config.toml")
    with pytest.raises(ConfigError) as err:
        parse_user_config(text, name)
    if line is None:  # a TOML syntax error: tomlkit's own line
        assert str(err.value).startswith(f"{name}:")
    else:
        assert str(err.value).startswith(f"{name}:{line}:")
    assert words in str(err.value)
