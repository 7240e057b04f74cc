import os
import tempfile
import sys
from pathlib import Path

import pytest

# Headless and offline before anything imports Qt or looks for weights.
os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ["DOPPEL_OFFLINE"] = "1"
# send2trash reads XDG_DATA_HOME once, at import: one throw-away trash for the whole session.
os.environ["XDG_DATA_HOME"] = tempfile.mkdtemp(prefix="doppel-test-xdg-")

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture(autouse=True)
def _isolated_user_dirs(tmp_path, monkeypatch):
    """Every test gets its own data/config dirs, trash and torch cache: nothing leaks between tests."""
    home = tmp_path / "userdirs"
    monkeypatch.setenv("DOPPEL_DATA_DIR", str(home / "data"))
    monkeypatch.setenv("DOPPEL_CONFIG_DIR", str(home / "config"))
    monkeypatch.setenv("TORCH_HOME", str(home / "torch"))
    monkeypatch.delenv("DOPPEL_WEIGHTS", raising=False)


@pytest.fixture(scope="session")
def embedder():
    """The bundled fallback model, loaded once: real ImageNet weights, offline."""
    from app.core.model import load_fallback

    return load_fallback("tests use the bundled model")


@pytest.fixture
def library(tmp_path, embedder):
    from app.core.library import Library

    lib = Library(str(tmp_path / "lib" / "library.db"), embedder.name, embedder.dim)
    yield lib
    lib.close()
