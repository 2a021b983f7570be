"""The command line, run end to end."""

import subprocess
import sys


def run_cli(*args, **kw):
    return subprocess.run([sys.executable, "-m", "minibert.cli", *args], capture_output=True,
                          text=True, **kw)


def test_autograd_tour_prints_graph_and_agreeing_gradients():
    out = run_cli("autograd")
    assert out.returncode == 0, out.stderr
    assert "y = tanh(z)" in out.stdout and "agrees with the backward: True" in out.stdout


def test_help_lists_commands():
    out = run_cli("--help")
    assert out.returncode == 0 and "autograd" in out.stdout
