"""The box table in a torch checkpoint, so a resumed run goes on with ContrastiveCrop; checkpoints saved safely."""
from __future__ import annotations

import io
import os
import pickle

import torch

from ..core import BoxTable
from ..core.files import atomic_path


def table_state(table: BoxTable) -> dict:
    """Rows and controls as plain values and an int64 tensor: safe for ``torch.load(weights_only=True)``."""
    state = table.state_dict()
    state["rows"] = torch.from_numpy(state["rows"])
    return state


def restore_table(table: BoxTable, state: dict) -> None:
    """Put ``table_state`` output back into ``table`` (its size must match; a bad state changes nothing).

    The table is global (one row per sample): resuming on a different number of
    ranks or nodes restores the same rows.
    """
    rows = state.get("rows")
    if isinstance(rows, torch.Tensor):
        state = {**state, "rows": rows.cpu().numpy()}
    table.load_state_dict(state)


def save_checkpoint(state: dict, path: str | os.PathLike) -> None:
    """``torch.save(state)`` to ``path``, written beside it and renamed over it, its room reserved first.

    A full filesystem is an ``OSError`` naming the file, the bytes needed and the
    room (not torch's ``inline_container`` error), and the previous checkpoint stays.
    The state is serialized in memory first: saving holds it twice.
    """
    buffer = io.BytesIO()
    torch.save(state, buffer)
    data = buffer.getbuffer()
    with atomic_path(path, size_hint=len(data)) as tmp, open(tmp, "r+b") as f:
        os.posix_fallocate(f.fileno(), 0, len(data))
        f.write(data)


def checkpoint_epoch(path: str | os.PathLike) -> int | None:
    """The epoch the checkpoint at ``path`` continues from (None without a readable one); tensors stay unread."""
    try:
        state = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
    except (OSError, RuntimeError, ValueError, EOFError, pickle.UnpicklingError):
        return None
    epoch = state.get("epoch") if isinstance(state, dict) else None
    return epoch if isinstance(epoch, int) else None
