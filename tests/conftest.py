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
# No desktop session bus: "Show in folder" must not open the tester's file manager. The D-Bus
# tests start a private bus of their own (test_reveal.py).
os.environ["DBUS_SESSION_BUS_ADDRESS"] = "unix:path=" + os.path.join(tempfile.mkdtemp(prefix="doppel-test-bus-"), "none")

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


@pytest.fixture
def photos(tmp_path):
    """Two photos with copies (a: smaller and grayscale; b: re-encoded) and one alone."""
    from tests import imagegen as ig

    root = tmp_path / "photos"
    a, b = ig.photo(51), ig.photo(52)
    ig.save(a, root / "a.jpg")
    ig.save(ig.resized(a, 0.5), root / "a_half.jpg")
    ig.save(ig.grayscale(a), root / "a_gray.jpg")
    ig.save(b, root / "b.jpg")
    ig.save(b, root / "b_q50.jpg", quality=50)
    ig.save(ig.photo(53), root / "c.jpg")
    return root


@pytest.fixture
def window(qtbot, tmp_path):
    """The main window on a library and settings of its own, shown offscreen."""
    from app.gui.main_window import MainWindow
    from app.settings import Settings

    settings = Settings(library=str(tmp_path / "lib.db"), allow_download=False)
    w = MainWindow(settings, settings_path=tmp_path / "settings.json")
    qtbot.addWidget(w)
    w.show()
    yield w
    w.close()


# The two layers: `-m "not integration"` runs the unit tests alone (seconds); the integration
# tests use the real model, a Milvus Lite file or a Milvus server, the Qt window, or other
# processes. A test that needs one of these fixtures is one by that alone; the rest that start
# processes say so with @pytest.mark.integration.
INTEGRATION_FIXTURES = {"embedder", "library", "window", "qtbot"}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if INTEGRATION_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)
