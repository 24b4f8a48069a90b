"""Where models live, and turning a model name or path into a folder safely.

A name (`default`, `my-novel`) is looked up in the user's model folder first, then in the models
shipped with the plugin; anything that looks like a path (with a `/`, or starting with `.` or `~`)
is used as the path it is, `..` included. Names never escape their folder.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

from textgen_core.model.files import folder_is_present

SHIPPED_MODELS = Path(__file__).resolve().parents[2] / "models"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.+-]{0,127}$")


class ModelNotFoundError(Exception):
    """No model folder by that name or path; the message lists where it looked."""


def user_models_dir() -> Path:
    """The per-user folder for trained models: $TEXTGEN_MODELS_DIR, else Neovim's data folder."""
    env = os.environ.get("TEXTGEN_MODELS_DIR")
    if env:
        return Path(env).expanduser()
    data_home = os.environ.get("XDG_DATA_HOME") or os.path.join(os.path.expanduser("~"), ".local", "share")
    return Path(data_home) / "nvim" / "textgen" / "models"


def search_dirs() -> list[Path]:
    return [user_models_dir(), SHIPPED_MODELS]


def looks_like_path(name_or_path: str) -> bool:
    return os.sep in name_or_path or "/" in name_or_path or name_or_path.startswith(("~", "."))


def is_valid_name(name: str) -> bool:
    return bool(_NAME.match(name)) and ".." not in name


def resolve_model_path(name_or_path: str | os.PathLike) -> Path:
    """The folder of a model given by name or by path; raises ModelNotFoundError with the places tried."""
    text = os.fspath(name_or_path).strip()
    if not text:
        raise ModelNotFoundError("no model given: name a model (e.g. 'default') or a model folder path")
    if looks_like_path(text):
        path = Path(text).expanduser()
        if folder_is_present(path):
            return path.resolve()
        raise ModelNotFoundError(f"{text}: no such model folder")
    if not is_valid_name(text):
        raise ModelNotFoundError(f"{text!r} is not a valid model name (letters, digits, '_', '-', '.', no '..')")
    tried = []
    for folder in search_dirs():
        candidate = folder / text
        tried.append(str(candidate))
        if folder.is_dir() and folder_is_present(candidate):
            return candidate.resolve()
    raise ModelNotFoundError(f"no model named {text!r}; looked in: {', '.join(tried)}")


def list_model_names() -> list[str]:
    """Names of every model folder found (user models first), for command-line completion."""
    names: list[str] = []
    for folder in search_dirs():
        if folder.is_dir():
            for entry in sorted(folder.iterdir()):
                if entry.is_dir() and (entry / "config.json").exists() and entry.name not in names \
                        and not entry.name.startswith("."):
                    names.append(entry.name)
    return names
