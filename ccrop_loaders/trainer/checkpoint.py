"""The box table in a torch checkpoint, so a resumed run goes on with ContrastiveCrop."""
from __future__ import annotations

import torch

from ..core import BoxTable


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
