"""The bundle's `Doppel` executable: the window (app.__main__)."""
import multiprocessing
import sys

if __name__ == "__main__":
    # A frozen app re-runs this executable for every spawned worker (decoders, verifiers, the
    # scan process): freeze_support() turns such a run into the worker, before anything else.
    multiprocessing.freeze_support()
    from app.__main__ import main

    sys.exit(main())
