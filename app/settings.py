"""Every user-facing setting, declared once, with its default. Front ends read and write these."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from app import paths

# "original": the unedited original (ranking.py); the others put their criterion first
KEEPER_RULES = ("original", "highest-resolution", "largest-file", "oldest", "newest", "preferred-folder")


@dataclass
class Settings:
    library: str = ""  # empty: paths.default_library(); or a Milvus server's URI (http://host:19530)
    server_token: str = ""  # a secured server's "user:password" or API key (also DOPPEL_MILVUS_TOKEN)
    server_database: str = ""  # the server's database; empty: its default one
    weights: str = ""  # a ResNet-50 state dict chosen by the user
    allow_download: bool = True
    similarity: float = 0.5  # 0 = loosest groups, 1 = only near-identical copies
    keeper_rule: str = "original"
    select_edited: bool = False  # preselect edited copies (crops, turns, grayscale ...) as well
    trash_jpeg_with_raw: bool = False  # preselect the JPEG of a RAW + JPEG pair
    preferred_folder: str = ""
    folders: list[str] = field(default_factory=list)
    reference_folders: list[str] = field(default_factory=list)
    decode_workers: int = 0  # 0: automatic

    def review(self, more_reference_folders=()):
        """The keeper and preselection options (ranking.Options) these settings choose."""
        from app.core.ranking import Options

        return Options(self.keeper_rule, tuple(self.reference_folders) + tuple(more_reference_folders),
                       self.preferred_folder, self.select_edited, self.trash_jpeg_with_raw)

    def library_location(self) -> str:
        return self.library or paths.default_library()

    def library_options(self) -> dict:
        """The server's token and database for core.library.Library (unused by a local file)."""
        return {"token": self.server_token or os.environ.get("DOPPEL_MILVUS_TOKEN", ""),
                "database": self.server_database}

    # -- persistence (JSON in the per-user config dir) --------------------------
    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or paths.config_dir() / "settings.json"
        try:
            raw = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        out = cls(**{k: v for k, v in raw.items() if k in known})
        if out.keeper_rule not in KEEPER_RULES:  # "resolution": what the default rule was called
            out.keeper_rule = "original"
        return out

    def save(self, path: Path | None = None) -> None:
        path = Path(path or paths.config_dir() / "settings.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        # readable by its owner only: it may hold a server's token
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(json.dumps(asdict(self), indent=2))
        os.replace(tmp, path)
