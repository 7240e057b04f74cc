"""Per-user locations, all from platformdirs so every OS gets its native place."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

from app import APP_NAME

_APP = APP_NAME.lower()


def data_dir() -> Path:
    return Path(os.environ.get("DOPPEL_DATA_DIR") or platformdirs.user_data_dir(_APP, appauthor=False))


def config_dir() -> Path:
    return Path(os.environ.get("DOPPEL_CONFIG_DIR") or platformdirs.user_config_dir(_APP, appauthor=False))


def log_dir() -> Path:
    return Path(platformdirs.user_log_dir(_APP, appauthor=False))


def default_library() -> str:
    return str(data_dir() / "library.db")


def journal_path() -> Path:
    return data_dir() / "trash-journal.jsonl"
