"""The ResNet-50 weights download, cancelled: from a local HTTP server that sends a file slowly
(DOPPEL_WEIGHTS_URL points at it), on the command line and in the window."""
import http.server
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests import imagegen as ig

ROOT = Path(__file__).resolve().parent.parent
NAME = "resnet50-11ad3fa6.pth"  # the published name: its hash is checked when the file is whole


@pytest.fixture
def slow_weights():
    """An HTTP server that sends 64 MB in 64 kB pieces, 20 ms apart (about a minute in all);
    yields its URL and the number of requests it got."""
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            requests.append(self.path)
            self.send_response(200)
            self.send_header("Content-Length", str(64 << 20))
            self.end_headers()
            try:
                for _ in range(1024):
                    self.wfile.write(b"\0" * (64 << 10))
                    time.sleep(0.02)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/models/{NAME}", requests
    server.shutdown()


def downloading_env(tmp_path, url):
    env = {**os.environ, "DOPPEL_WEIGHTS_URL": url, "TORCH_HOME": str(tmp_path / "torch"),
           "PYTHONPATH": str(ROOT)}
    env.pop("DOPPEL_OFFLINE", None)
    return env


@pytest.mark.integration
def test_ctrl_c_during_the_download_stops_cleanly_and_the_download_is_offered_again(tmp_path, slow_weights):
    url, requests = slow_weights
    photos = tmp_path / "photos"
    ig.save(ig.photo(1), photos / "a.jpg")
    env = downloading_env(tmp_path, url)
    for attempt in (1, 2):
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "scan", str(photos), "--library",
                                 str(tmp_path / "lib.db")], env=env, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 60
        while len(requests) < attempt and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(requests) == attempt, "the download was not asked for"
        time.sleep(1.0)  # part of the file has come
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 130, err
        assert "cancelled while the ResNet-50 weights were downloading" in err
        assert "Traceback" not in err
        checkpoints = tmp_path / "torch" / "hub" / "checkpoints"
        assert not list(checkpoints.glob("*")), "a partial download was left behind"


def test_cancel_in_the_window_during_the_download_is_not_an_error(qtbot, tmp_path, slow_weights, monkeypatch):
    from app.gui.main_window import MainWindow
    from app.settings import Settings

    url, requests = slow_weights
    for k, v in downloading_env(tmp_path, url).items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("DOPPEL_OFFLINE")
    photos = tmp_path / "photos"
    ig.save(ig.photo(2), photos / "a.jpg")
    w = MainWindow(Settings(library=str(tmp_path / "lib.db"), allow_download=True),
                   settings_path=tmp_path / "settings.json")
    qtbot.addWidget(w)
    w.show()
    w.add_folders([str(photos)])
    w.start_scan()
    qtbot.waitUntil(lambda: w.progress.download is not None and w.progress.download.value() > 0, timeout=60_000)
    from PySide6.QtCore import Qt
    from PySide6.QtWidgets import QPushButton

    with qtbot.waitSignal(w.scan_cancelled, timeout=60_000):
        qtbot.mouseClick(w.progress.download.findChild(QPushButton), Qt.MouseButton.LeftButton)  # the dialog's Cancel
    qtbot.waitUntil(lambda: not w.tasks.running("scan"), timeout=30_000)
    assert "Cancelled while the ResNet-50 weights were downloading" in w.progress.label.text()
    assert w.problem_box is None  # no error dialog
    assert w.progress.download is None and w.scan_action.isEnabled()
    assert not list((tmp_path / "torch" / "hub" / "checkpoints").glob("*"))
    w.close()
