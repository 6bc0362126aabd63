import subprocess
import sys

import pytest

from crossnic import __version__
from crossnic.cli import main


def test_version(capsys):
    assert main(["version"]) == 0
    assert capsys.readouterr().out.strip() == f"crossnic {__version__}"


def test_console_script_is_installed():
    out = subprocess.run([sys.executable, "-m", "crossnic", "version"], capture_output=True,
                         text=True, check=True)
    assert out.stdout.startswith("crossnic ")


@pytest.mark.parametrize("argv", [[], ["no-such-command"], ["version", "--bogus"]])
def test_bad_arguments_exit_nonzero(argv, capsys):
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    assert "error" in capsys.readouterr().err
