"""A real Milvus server for the server tests: `python milvus_server.py DIR` starts PyPI's
`milvus` package's server with its data in DIR, prints "ready" once it answers, and stops it on
SIGTERM. Runs in a venv of its own (milvus 2.3.5 pins packages Doppel's venv must not get)."""
import signal
import sys
import time

from milvus import default_server

default_server.set_base_dir(sys.argv[1])
started = time.monotonic()
default_server.start()
print(f"ready: Milvus server on port {default_server.listen_port} in {time.monotonic() - started:.1f} s", flush=True)


def stop(*_):
    default_server.stop()
    sys.exit(0)


signal.signal(signal.SIGTERM, stop)
signal.signal(signal.SIGINT, stop)
while True:
    time.sleep(1)
