"""Shared validators of the core's parameters: each returns the checked value or raises naming it."""
from __future__ import annotations

import numpy as np


def check_name(name: str) -> str:
    if not isinstance(name, str) or not name or "/" in name or not name.isprintable() or name.startswith(".") \
            or len(name.encode()) > 200:
        raise ValueError(f"table name must be a non-empty string of at most 200 bytes, printable, without '/' and "
                         f"not starting with '.', got {name!r}")
    return name


def check_flag(name: str, value, *, stored: bool = False) -> bool:
    """A bool (numpy's too), or with ``stored`` the integer 0 or 1 a file holds; nothing else (not "False")."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if stored and isinstance(value, (int, np.integer)) and int(value) in (0, 1):
        return bool(value)
    expected = "0 or 1" if stored else "a bool"
    raise (ValueError if stored else TypeError)(f"{name} must be {expected}, got {type(value).__name__} {value!r}")


def check_control(name: str, value, hi: int) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__} {value!r}")
    if not 0 <= int(value) <= hi:
        raise ValueError(f"{name} must be in [0, {hi}], got {value}")
    return int(value)
