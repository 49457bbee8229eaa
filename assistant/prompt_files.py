"""Prompt files: packaged with the program, or a user's own folder.

The repository keeps them in the top-level ``prompts/`` folder; the build maps that folder
into the package as ``assistant.prompts`` (see ``[tool.setuptools.package-dir]`` in
pyproject.toml), so an editable install, a wheel, ``pipx install`` and ``uv tool install``
all read them through :mod:`importlib.resources`.

``prompts_dir`` (setting, ``NOTES_ASSISTANT_PROMPTS_DIR``) names a folder of your own: a
file found there wins, a file missing there falls back to the packaged one.
"""

from __future__ import annotations

from importlib import resources
from pathlib import Path

from .errors import UserError

PACKAGE = "assistant.prompts"


def packaged_prompt(name: str) -> str:
    try:
        return resources.files(PACKAGE).joinpath(name).read_text(encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError) as exc:
        raise UserError(f"the prompt file {name} is missing from this installation: reinstall notes-assistant "
                        f"({type(exc).__name__})") from None


def read_prompt(prompts_dir: str | Path | None, name: str) -> str:
    """The text of prompt ``name``: from ``prompts_dir`` when given and it has the file, else packaged."""
    if prompts_dir:
        folder = Path(prompts_dir).expanduser()
        if not folder.is_dir():
            raise UserError(f"prompts_dir {folder} is not a folder: fix NOTES_ASSISTANT_PROMPTS_DIR or the config "
                            f"file, or unset it to use the packaged prompts")
        own = folder / name
        if own.is_file():
            return own.read_text(encoding="utf-8")
    return packaged_prompt(name)
