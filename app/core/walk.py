"""Stage 1: walk folders and list candidate image files as (path, size, mtime_ns).

Images are recognised by their first bytes, not their extension, so a JPEG named .dat is found
and a README is ignored. A file that has an image extension but no image signature is still
listed: the decode stage then reports it as a problem instead of silently skipping it.
"""
from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from typing import Iterable, Iterator

from app.core import raw
from app.core.domain import Problem

IMAGE_EXTENSIONS = {".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".webp", ".gif", ".bmp", ".dib",
                    ".tif", ".tiff", ".heic", ".heif", ".avif"} | raw.RAW_EXTENSIONS


@dataclass(frozen=True)
class FileEntry:
    path: str  # absolute, as the OS returns it (may hold surrogate-escaped bytes)
    size: int
    mtime_ns: int


def inside(path: str, folders: Iterable[str]) -> bool:
    """True when ``path`` is one of ``folders`` or lies below one of them."""
    path = os.path.abspath(path)
    for f in folders:
        f = os.path.abspath(f)
        if path == f or path.startswith(os.path.join(f, "")):
            return True
    return False


def sniff_image(head: bytes) -> bool:
    if head.startswith(b"\xff\xd8\xff") or head.startswith(b"\x89PNG\r\n\x1a\n"):
        return True
    if head[:6] in (b"GIF87a", b"GIF89a") or head.startswith(b"BM"):
        return True
    if head[:4] in (b"II*\x00", b"MM\x00*") or (head[:4] == b"RIFF" and head[8:12] == b"WEBP"):
        return True
    if raw.sniff(head):
        return True
    return head[4:8] == b"ftyp" and head[8:12] in (b"heic", b"heix", b"hevc", b"heim", b"heis",
                                                   b"mif1", b"msf1", b"avif")


def _is_candidate(path: str, name: str) -> bool:
    if os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
        return True
    try:
        with open(path, "rb") as f:
            return sniff_image(f.read(16))
    except OSError:
        return False


def walk(folders: Iterable[str], problems: list | None = None, progress=None) -> Iterator[FileEntry]:
    """Yield image files under ``folders`` once each (by real path), hidden entries skipped.

    Symlinks to files and folders are followed, loops are cut by remembering each real directory,
    and a broken symlink is reported, not fatal.
    """
    seen_dirs: set[tuple[int, int]] = set()
    seen_files: set[str] = set()
    problems = problems if problems is not None else []
    # (folder, its real path when it is reached through a symbolic link, else None): only paths
    # through a link need resolving to find the same file twice, and a folder is resolved once,
    # not each file in it (os.path.realpath costs ~100 us a file: a third of a rescan's walk)
    roots = [os.path.abspath(os.path.expanduser(f)) for f in folders]
    stack = [(f, r if (r := os.path.realpath(f)) != f else None) for f in roots][::-1]
    while stack:
        top, real_top = stack.pop()
        try:
            st = os.stat(top)
        except OSError as exc:
            problems.append(Problem(top, f"cannot open folder: {exc.strerror or exc}"))
            continue
        key = (st.st_dev, st.st_ino)
        if key in seen_dirs:
            continue  # symlink loop or a folder given twice
        seen_dirs.add(key)
        try:
            entries = sorted(os.scandir(top), key=lambda e: e.name)
        except OSError as exc:
            problems.append(Problem(top, f"cannot list folder: {exc.strerror or exc}"))
            continue
        subdirs = []
        for e in entries:
            if e.name.startswith("."):
                continue
            if progress is not None:
                progress.check()
            try:
                st = e.stat(follow_symlinks=True)
            except FileNotFoundError:
                if e.is_symlink():
                    problems.append(Problem(e.path, "broken symbolic link"))
                continue
            except OSError as exc:
                problems.append(Problem(e.path, f"cannot read: {exc.strerror or exc}"))
                continue
            # the entry's real path where a link is involved; None: e.path is its real path
            real = os.path.realpath(e.path) if e.is_symlink() else os.path.join(real_top, e.name) if real_top else None
            if stat.S_ISDIR(st.st_mode):
                subdirs.append((e.path, real))
                continue
            if not stat.S_ISREG(st.st_mode):
                continue
            if not _is_candidate(e.path, e.name):
                continue
            real = real or e.path
            if real in seen_files:
                continue  # the same file reached through a symlink
            seen_files.add(real)
            yield FileEntry(e.path, st.st_size, st.st_mtime_ns)
        stack.extend(reversed(subdirs))
