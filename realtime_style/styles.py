"""Finding installed style models: `rtstyle styles` and every `--style NAME`.

A style is an .onnx file; its name is the file stem. Folders are searched in
this order, and the first file of a name wins, so a user's own model can stand
in for a shipped one:

1. each folder in ``$RTSTYLE_MODELS`` (separated like PATH);
2. ``$XDG_DATA_HOME/rtstyle/models`` (default ``~/.local/share/rtstyle/models``);
3. the models shipped with the package.

Metadata is read through ONNX Runtime, so this works without torch or onnx.
"""

from __future__ import annotations

import difflib
import os
from dataclasses import dataclass, field
from pathlib import Path

from realtime_style.errors import UserError

DEFAULT_STYLE = "mosaic"


@dataclass
class StyleModel:
    name: str
    path: Path
    metadata: dict[str, str] = field(default_factory=dict)

    @property
    def size_mb(self) -> float:
        return self.path.stat().st_size / 1e6


def model_dirs() -> list[Path]:
    dirs = [Path(p) for p in os.environ.get("RTSTYLE_MODELS", "").split(os.pathsep) if p]
    data_home = os.environ.get("XDG_DATA_HOME") or Path.home() / ".local" / "share"
    dirs.append(Path(data_home) / "rtstyle" / "models")
    dirs.append(shipped_models_dir())
    return dirs


def shipped_models_dir() -> Path:
    """The package's models; in a checkout that is not installed (PYTHONPATH=., as on the GPU
    machine of docs/training.md), the repository's models/ folder, which installs as that package."""
    try:
        import realtime_style.models
    except ImportError:
        return Path(__file__).resolve().parent.parent / "models"
    return Path(realtime_style.models.__file__).parent


def installed_styles() -> list[StyleModel]:
    """Every style found, first of each name, sorted by name."""
    found: dict[str, StyleModel] = {}
    for folder in model_dirs():
        if folder.is_dir():
            for path in sorted(folder.glob("*.onnx")):
                found.setdefault(path.stem, StyleModel(path.stem, path))
    return [found[name] for name in sorted(found)]


def read_metadata(path: str | os.PathLike) -> dict[str, str]:
    """The model's metadata_props, or UserError if ONNX Runtime cannot open it."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own Fail/InvalidGraph/NoSuchFile types
        raise UserError(f"{path}: not a usable ONNX model ({str(exc).splitlines()[0][:200]})") from None
    return dict(session.get_modelmeta().custom_metadata_map)


def resolve_style(name_or_path: str) -> Path:
    """`--style` takes an installed style's name or a path to an .onnx file."""
    candidate = Path(name_or_path)
    if candidate.suffix == ".onnx" or os.sep in name_or_path or candidate.exists():
        if not candidate.is_file():
            raise UserError(f"style model {candidate} does not exist")
        return candidate
    styles = {s.name: s.path for s in installed_styles()}
    if name_or_path in styles:
        return styles[name_or_path]
    if not styles:
        raise UserError(f"unknown style {name_or_path!r}: no styles are installed "
                        f"(searched {', '.join(map(str, model_dirs()))})")
    close = difflib.get_close_matches(name_or_path, styles, n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    raise UserError(f"unknown style {name_or_path!r}; {hint}installed: {', '.join(styles)}")


def styles_table() -> str:
    """The text `rtstyle styles` prints."""
    styles = installed_styles()
    if not styles:
        return "no styles installed (searched " + ", ".join(map(str, model_dirs())) + ")"
    rows = [("NAME", "ARCH", "TRAINED AT", "STEPS", "SIZE", "LICENCE", "PATH")]
    for style in styles:
        try:
            meta = read_metadata(style.path)
        except UserError:
            meta = {"arch": "(unreadable)"}
        rows.append((style.name, meta.get("arch", "?"), f"{meta['train_size']} px" if meta.get("train_size") else "?",
                     meta.get("train_steps_total", meta.get("train_steps", "?")), f"{style.size_mb:.1f} MB", meta.get("style_license", "?"),
                     str(style.path)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip() for row in rows)
