"""The package installs with pip, offline, into a fresh virtual environment."""

import pathlib
import shutil
import subprocess

from conftest import PY_DIR, PYTHON


def run(cmd, cwd, timeout=180):
    p = subprocess.run(cmd, cwd=str(cwd), stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, "%s failed (%d):\n%s\n%s" % (cmd, p.returncode, p.stdout, p.stderr)
    return p.stdout


def test_pip_install_into_a_venv(tmp_path):
    # Install from a copy, so the build leaves nothing in the source tree.
    source = tmp_path / "python"
    shutil.copytree(PY_DIR, source, ignore=shutil.ignore_patterns(
        "tests", "bench", "build", "dist", "*.egg-info", "__pycache__", ".pytest_cache"))
    venv = tmp_path / "venv"
    run([PYTHON, "-m", "venv", "--system-site-packages", str(venv)], tmp_path)
    vpython = venv / "bin" / "python"
    run([str(vpython), "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "./python"], tmp_path)

    out = run([str(vpython), "-c", (
        "import gstats, gstats.gunicorn, gstats.wsgi, zmq\n"
        "print(gstats.__file__)\n"
        "print(gstats.__version__)\n"
        "print(callable(gstats.start_request) and callable(gstats.gunicorn.pre_request)"
        " and callable(gstats.wsgi.app))\n"
    )], tmp_path)
    path, version, ok = out.split()
    assert path.startswith(str(venv)) and "site-packages" in path
    assert version == "0.7.0" and ok == "True"
    # The type marker is installed too.
    assert pathlib.Path(path).parent.joinpath("py.typed").exists()
    show = run([str(vpython), "-m", "pip", "show", "gstats"], tmp_path)
    assert "Requires: pyzmq" in show
