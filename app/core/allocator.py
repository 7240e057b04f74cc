"""Keep freed memory in the process instead of handing it back to the OS at once (glibc only).

glibc serves blocks over 128 KB-32 MB with fresh mmaps and returns them on free, so every batch
of decoded images and every layer of the network faulted its buffers in again page by page: a
fifth of a first scan's CPU time was the kernel zeroing pages (measured: 8 s of system time per
1,000 photos, 1.7 s with this). Blocks up to MMAP_THRESHOLD now come from the heap and up to
TRIM_THRESHOLD of free heap is kept for the next batch.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import sys

MMAP_THRESHOLD = 64 << 20  # above the largest feature map of a batch (ResNet-50 fp32: 51 MB)
TRIM_THRESHOLD = 256 << 20
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters

_done = False


def _libc_function(name: str):
    """The C library's ``name`` on Linux, where it is normally glibc's; None elsewhere or if absent."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        return getattr(ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6"), name)
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Tune this process's allocator once; False where it is not glibc's (macOS, Windows, musl)."""
    global _done
    if _done:
        return True
    mallopt = _libc_function("mallopt")
    if mallopt is None:
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    _done = bool(mallopt(_M_MMAP_THRESHOLD, MMAP_THRESHOLD) and mallopt(_M_TRIM_THRESHOLD, TRIM_THRESHOLD))
    return _done


def release_freed_memory() -> bool:
    """Hand the heap's free pages back to the OS now (glibc's malloc_trim); False elsewhere.

    With keep_freed_memory the heap keeps what is freed, which is the point during embedding but
    not when a large block is about to replace many small ones: copying 100,000 rows' vectors
    (2048-d, made in batches of 16 as a scan makes them; 834 MB) into one matrix while dropping
    them peaked at 1,615 MB, and at 913 MB with this called every 10,000 rows.
    """
    trim = _libc_function("malloc_trim")
    if trim is None:
        return False
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    trim(0)
    return True
