"""The one exception type that reaches users as a single line, not a traceback."""

from __future__ import annotations


class UserError(Exception):
    """A problem the user can fix (bad path, bad option, missing extra).

    The CLI prints ``rtstyle: error: <message>`` and exits non-zero; the message
    should say what is wrong and, where it helps, what to do about it.
    """


def require_torch(what: str):
    """Import torch for a torch-only command, or explain how to get it."""
    try:
        import torch
    except ImportError:
        raise UserError(
            f"{what} needs PyTorch, which is not installed. Install the training extra: "
            "pip install torch && pip install 'rtstyle[train]' "
            "(install torch first, the build for your machine; the README says how)"
        ) from None
    return torch
