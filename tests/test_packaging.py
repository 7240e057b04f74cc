"""The package installs whole: a wheel built from the repository holds the icon and the desktop
entry, and a non-editable install finds them through importlib.resources (about 20 s)."""
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.integration
def test_a_non_editable_install_finds_the_icon_and_the_desktop_entry(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(wheels), str(ROOT)], check=True, cwd=tmp_path)
    wheel = next(wheels.glob("doppel-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"app/resources/doppel.svg", "app/resources/doppel.desktop", "app/gui/main_window.py"} <= names
    assert not any(n.startswith(("tests/", "bench/")) for n in names)
    # installed into a venv of its own, not editable, and read from outside the repository
    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    python = env_dir / "bin" / "python"
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "-q", str(wheel)], check=True, cwd=tmp_path)
    probe = ("import importlib.resources as r, app; "
             "f = r.files('app.resources'); "
             "print(app.__file__); print((f / 'doppel.svg').is_file(), (f / 'doppel.desktop').read_text().count('Exec=doppel'))")
    out = subprocess.run([str(python), "-c", probe], check=True, capture_output=True, text=True, cwd=tmp_path).stdout.split("\n")
    assert str(env_dir) in out[0] and str(ROOT) not in out[0]
    assert out[1] == "True 1"


def test_the_window_has_its_icon_from_the_package_data(window):
    assert not window.windowIcon().isNull()
    assert window.windowIcon().availableSizes() or not window.windowIcon().pixmap(32, 32).isNull()
