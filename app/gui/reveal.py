"""Show a file in the system's file manager, selected: the way each desktop offers.

- Linux and other freedesktop systems: ``org.freedesktop.FileManager1.ShowItems`` on the session
  bus (Nautilus, Dolphin, Nemo, Caja, Thunar… implement it).
- Windows: ``explorer /select,"path"``. macOS: ``open -R path``.
- Anything else, or a file manager that does not answer: the folder is opened, unselected.
"""
from __future__ import annotations

import logging
import os
import subprocess
import sys

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

log = logging.getLogger(__name__)

SERVICE = "org.freedesktop.FileManager1"
OBJECT = "/org/freedesktop/FileManager1"
TIMEOUT_MS = 3000  # a file manager starting on demand answers in about a second; a hung bus must not hold the window


def show_items(path: str) -> bool:
    """Ask the desktop's file manager over D-Bus to show ``path`` selected; False when there is
    no session bus or no file manager answers."""
    from PySide6.QtDBus import QDBusConnection, QDBusInterface, QDBusMessage

    bus = QDBusConnection.sessionBus()
    if not bus.isConnected():
        return False
    iface = QDBusInterface(SERVICE, OBJECT, SERVICE, bus)
    if not iface.isValid():  # nothing owns the name and nothing can be started for it
        return False
    iface.setTimeout(TIMEOUT_MS)
    reply = iface.call("ShowItems", [bytes(QUrl.fromLocalFile(path).toEncoded()).decode()], "")
    if reply.type() == QDBusMessage.MessageType.ErrorMessage:
        log.info("%s.ShowItems failed: %s", SERVICE, reply.errorMessage())
        return False
    return True


def show_in_folder(path: str, platform: str = sys.platform) -> str:
    """Show ``path`` in its folder, selected where the system allows; returns the way taken:
    "explorer", "finder", "file manager" (D-Bus) or "folder" (the folder opened, unselected)."""
    try:
        if platform == "win32":
            subprocess.Popen(f'explorer /select,"{os.path.normpath(path)}"')
            return "explorer"
        if platform == "darwin":
            subprocess.Popen(["open", "-R", path])
            return "finder"
        if show_items(path):
            return "file manager"
    except OSError as exc:  # no explorer or open on PATH: the folder as a last resort
        log.info("could not show %s selected (%s); opening its folder", path, exc)
    QDesktopServices.openUrl(QUrl.fromLocalFile(os.path.dirname(path)))
    return "folder"
