"""`doppel` / `python -m app`: the desktop app."""
from __future__ import annotations

import argparse
import sys


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="doppel", description="Find and clean duplicate photos.")
    p.add_argument("folders", nargs="*", metavar="FOLDER", help="folders to preselect")
    p.add_argument("--scan", action="store_true", help="start scanning right away")
    args = p.parse_args(argv)

    from PySide6.QtWidgets import QApplication

    from app import APP_NAME
    from app.gui.errors import install_excepthook, setup_logging
    from app.gui.lifecycle import keep_garbage_collections_short, quit_on_signals
    from app.gui.main_window import MainWindow, app_icon

    setup_logging()
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName(APP_NAME)
    app.setDesktopFileName("doppel")
    app.setWindowIcon(app_icon())
    window = MainWindow()
    install_excepthook(lambda: window)
    quit_on_signals(window)
    if args.folders:
        window.add_folders(args.folders)
    window.show()
    keep_garbage_collections_short()
    if args.scan:
        window.start_scan()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
