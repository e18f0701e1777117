"""Writing outputs so that a failure never leaves a corrupt or half-written file.

Every output goes to a temporary name in the target folder and is renamed over
the final name only once complete (rename is atomic within one filesystem).
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path
from typing import Iterator

from realtime_style.errors import UserError


def check_input_file(path: str | os.PathLike, kind: str) -> Path:
    """An input that exists, is a file and can be read; ``kind`` names it in the error ("an image")."""
    source = Path(path)
    if not source.exists():
        raise UserError(f"{source}: no such file")
    if source.is_dir():
        raise UserError(f"{source}: is a folder, not {kind}")
    if not os.access(source, os.R_OK):
        raise UserError(f"{source}: permission denied")
    return source


def check_output_path(output: str | os.PathLike, inputs: tuple[str | os.PathLike, ...] = (),
                      overwrite: bool = False) -> Path:
    """Refuse outputs that would destroy data, before any work is done."""
    out = Path(output)
    for inp in inputs:
        inp = Path(inp)
        if inp.exists() and (out.resolve() == inp.resolve()
                             or (out.exists() and os.path.samefile(out, inp))):
            raise UserError(f"output {out} is also an input: refusing to overwrite an input")
    if out.is_dir():
        raise UserError(f"output {out} is a folder; give a file name")
    if out.exists() and not overwrite:
        raise UserError(f"output {out} already exists (use --overwrite to replace it)")
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise UserError(f"output folder {parent} does not exist")
    if not os.access(parent, os.W_OK):
        raise UserError(f"output folder {parent} is not writable")
    return out


@contextlib.contextmanager
def atomic_output(output: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``output``; rename it to ``output`` on success.

    The temporary name keeps the suffix so that writers which pick a format from
    the extension (Pillow, PyAV) still do. On any exception, Ctrl-C included,
    the temporary file is removed and ``output`` is left as it was.
    """
    made: list[Path] = []
    try:
        tmp = temporary_beside(output, made)
        yield tmp
        commit(tmp, output)
    except BaseException:
        for path in made:
            discard(path)
        raise


def temporary_beside(output: str | os.PathLike, made: list[Path] | None = None) -> Path:
    """A new empty file in the output's folder, named after it, for writers that outlive one block.

    The name goes into ``made`` before the file is created: a Ctrl-C that lands just after the
    file appears (before this returns) still leaves the caller a name to discard.
    """
    out = Path(output)
    folder = out.parent if str(out.parent) else Path(".")
    made = [] if made is None else made
    while True:
        tmp = folder / f".{out.stem}.{secrets.token_hex(8)}.partial{out.suffix}"
        made.append(tmp)
        try:
            os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
            return tmp
        except FileExistsError:  # another writer's file: not ours to discard
            made.remove(tmp)


def commit(tmp: Path, output: str | os.PathLike) -> None:
    """Give the finished temporary file normal permissions (mkstemp makes 0600) and its final name."""
    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, output)


def discard(tmp: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def cache_dir() -> Path:
    """Where caches live (VGG19 weights, TensorRT engines): $RTSTYLE_CACHE or $XDG_CACHE_HOME/rtstyle."""
    if os.environ.get("RTSTYLE_CACHE"):
        return Path(os.environ["RTSTYLE_CACHE"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "rtstyle"
