"""The bundle's `doppel-cli` executable: the command line (app.cli)."""
import multiprocessing
import sys

if __name__ == "__main__":
    multiprocessing.freeze_support()  # see entry_gui.py: spawned workers re-run this executable
    from app.cli import main

    sys.exit(main())
