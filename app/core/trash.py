"""Safe trashing: the only place Doppel removes files, and it only ever moves them to the OS trash.

Rules enforced here, whatever the front end asks for:
- a group never loses all its copies: at least one copy that is kept must still exist unchanged;
- files inside reference folders are never trashed;
- a file is trashed only if it still matches the scan (size, mtime, SHA-256);
- every trashed file is journaled (path, size, hash, time, where the trash put it);
- a failure on one file is a problem entry; the batch goes on.
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
import urllib.parse
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Optional

from app.core.domain import Problem
from app.core.progress import Progress
from app.core.walk import inside


@dataclass(frozen=True)
class ScannedFile:
    """What the scan saw of a file; trashing checks the file still is exactly this."""
    path: str
    size: int
    mtime_ns: int
    sha256: str


@dataclass
class GroupDecision:
    members: list[ScannedFile]
    trash: set[str]  # paths chosen for the trash


@dataclass
class JournalEntry:
    path: str
    size: int
    sha256: str
    time: float
    trash_path: str = ""  # where the trash put it (freedesktop trash), "" when unknown
    action: str = "trashed"  # trashed | restored


@dataclass
class TrashOutcome:
    trashed: list[JournalEntry] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)

    @property
    def freed(self) -> int:
        return sum(e.size for e in self.trashed)


def sha256_of(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def unchanged(f: ScannedFile) -> Optional[str]:
    """None when the file still matches the scan, else why not."""
    try:
        st = os.stat(f.path, follow_symlinks=False)
    except FileNotFoundError:
        return "file no longer exists"
    except OSError as exc:
        return f"cannot check the file: {exc.strerror or exc}"
    if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
        return "file changed since it was scanned (size or modification time differ); rescan first"
    try:
        if sha256_of(f.path) != f.sha256:
            return "file content changed since it was scanned; rescan first"
    except OSError as exc:
        return f"cannot read the file: {exc.strerror or exc}"
    return None


# --------------------------------------------------------------------------- journal
class Journal:
    """Append-only JSON lines; readable by people and by ``doppel-cli restore``."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def append(self, entry: JournalEntry) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(asdict(entry), ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def entries(self) -> list[JournalEntry]:
        out = []
        try:
            lines = self.path.read_text("utf-8").splitlines()
        except FileNotFoundError:
            return out
        for line in lines:
            try:
                out.append(JournalEntry(**json.loads(line)))
            except (ValueError, TypeError):
                continue  # a torn last line after a crash is skipped, not fatal
        return out

    def trashed_now(self) -> list[JournalEntry]:
        """Entries trashed and not restored since (latest action per trash location wins)."""
        state: dict[tuple[str, str], JournalEntry] = {}
        for e in self.entries():
            state[(e.path, e.trash_path)] = e
        return [e for e in state.values() if e.action == "trashed"]


# --------------------------------------------------------------------------- trash location
def _freedesktop_trash_dirs() -> list[Path]:
    data = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return [Path(data) / "Trash"]


def _find_in_trash(original: str, since: float) -> str:
    """Where send2trash put ``original`` (freedesktop trash: read the .trashinfo files)."""
    if not sys.platform.startswith("linux"):
        return ""
    quoted = urllib.parse.quote(os.fsencode(os.path.abspath(original)), safe="/")
    candidates = []
    for trash in _freedesktop_trash_dirs():
        info_dir = trash / "info"
        if not info_dir.is_dir():
            continue
        for info in info_dir.glob("*.trashinfo"):
            try:
                if info.stat().st_mtime < since - 2:
                    continue
                text = info.read_text("utf-8", "replace")
            except OSError:
                continue
            if f"Path={quoted}" in text.splitlines():
                candidates.append((info.stat().st_mtime, trash / "files" / info.name[: -len(".trashinfo")]))
    if not candidates:
        return ""
    return str(max(candidates)[1])


# --------------------------------------------------------------------------- trash
def validate(decision: GroupDecision, reference_folders: Iterable[str]) -> tuple[list[ScannedFile], list[Problem]]:
    """Which of the chosen files may go; the rest come back as problems."""
    reference_folders = list(reference_folders)
    problems: list[Problem] = []
    paths = {m.path for m in decision.members}
    chosen = [m for m in decision.members if m.path in decision.trash]
    problems += [Problem(p, "not a member of this group") for p in decision.trash - paths]
    allowed = []
    for m in chosen:
        if inside(m.path, reference_folders):
            problems.append(Problem(m.path, "in a reference folder: never trashed"))
        else:
            allowed.append(m)
    kept = [m for m in decision.members if m not in allowed]
    if not kept:
        return [], problems + [Problem(m.path, "refused: this would trash every copy in the group")
                               for m in allowed]
    # The copy we keep must really be there, unchanged: otherwise trashing the others could
    # leave no copy at all.
    if not any(unchanged(k) is None for k in kept):
        return [], problems + [Problem(m.path, "refused: no kept copy of this group is still present and unchanged")
                               for m in allowed]
    return allowed, problems


def trash_files(decisions: list[GroupDecision], journal: Journal, reference_folders: Iterable[str] = (),
                progress: Optional[Progress] = None) -> TrashOutcome:
    from send2trash import send2trash

    progress = progress or Progress()
    outcome = TrashOutcome()
    plan: list[ScannedFile] = []
    for d in decisions:
        allowed, problems = validate(d, reference_folders)
        plan += allowed
        outcome.problems += problems
    progress.start(len(plan), "trash", f"Moving {len(plan)} files to the trash")
    for f in plan:
        why = unchanged(f)
        if why:
            outcome.problems.append(Problem(f.path, f"skipped: {why}"))
        else:
            started = time.time()
            try:
                send2trash(f.path)
            except Exception as exc:  # permission, trash unavailable, cross-device...
                outcome.problems.append(Problem(f.path, f"could not move to the trash: {exc}"))
            else:
                entry = JournalEntry(f.path, f.size, f.sha256, started, _find_in_trash(f.path, started))
                journal.append(entry)
                outcome.trashed.append(entry)
        progress.advance(1, f.path)
    return outcome


def restore(entry: JournalEntry, journal: Journal) -> Optional[str]:
    """Move a trashed file back to where it was; None on success, else why not."""
    if not entry.trash_path or not os.path.exists(entry.trash_path):
        return "the file is no longer in the trash (emptied, or restored another way)"
    if os.path.lexists(entry.path):
        return "another file now exists at the original location; restore it from the trash by hand"
    os.makedirs(os.path.dirname(entry.path), exist_ok=True)
    try:
        shutil.move(entry.trash_path, entry.path)
    except OSError as exc:
        return f"could not restore: {exc.strerror or exc}"
    info = Path(entry.trash_path).parent.parent / "info" / (Path(entry.trash_path).name + ".trashinfo")
    try:
        info.unlink()
    except OSError:
        pass
    journal.append(JournalEntry(entry.path, entry.size, entry.sha256, time.time(), entry.trash_path, "restored"))
    return None


def restore_entries(entries: Iterable[JournalEntry], journal: Journal) -> tuple[list[JournalEntry], list[str]]:
    """Restore the ``entries`` still in the trash as the journal recorded them: (those restored,
    "path: why not" for the rest)."""
    live = {(e.path, e.trash_path) for e in journal.trashed_now()}
    back, problems = [], []
    for e in entries:
        why = "not in the trash any more" if (e.path, e.trash_path) not in live else restore(e, journal)
        if why:
            problems.append(f"{e.path}: {why}")
        else:
            back.append(e)
    return back, problems
