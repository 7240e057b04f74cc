"""Every user-facing setting, declared once, with its default. Front ends read and write these."""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path

from app import paths

KEEPER_RULES = ("resolution", "largest-file", "oldest", "newest", "preferred-folder")


@dataclass
class Settings:
    library: str = ""  # empty: paths.default_library()
    weights: str = ""  # a ResNet-50 state dict chosen by the user
    allow_download: bool = True
    similarity: float = 0.5  # 0 = loosest groups, 1 = only near-identical copies
    keeper_rule: str = "resolution"
    preferred_folder: str = ""
    folders: list[str] = field(default_factory=list)
    reference_folders: list[str] = field(default_factory=list)
    decode_workers: int = 0  # 0: automatic

    def library_location(self) -> str:
        return self.library or paths.default_library()

    # -- persistence (JSON in the per-user config dir) --------------------------
    @classmethod
    def load(cls, path: Path | None = None) -> "Settings":
        path = path or paths.config_dir() / "settings.json"
        try:
            raw = json.loads(Path(path).read_text("utf-8"))
        except (OSError, ValueError):
            return cls()
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in known})

    def save(self, path: Path | None = None) -> None:
        path = Path(path or paths.config_dir() / "settings.json")
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self), indent=2), "utf-8")
        os.replace(tmp, path)
