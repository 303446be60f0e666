"""The pipeline being defined: its ContrastiveCrop description, what it keeps alive, the device and table it uses.

Builders record a ``PipelineDescription`` for each pipeline they make
(``describe``); ``ContrastiveCropIterator`` reads it back with ``description_of``.
The ops register here what compiled code reads by address (table mappings,
arrays), so it lives as long as the pipeline.
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field
from typing import Any

from nvidia.dali.pipeline import Pipeline

from ..core import BoxTable

DEVICES = ("cpu", "gpu")


@dataclass
class PipelineDescription:
    """What a ContrastiveCrop pipeline outputs and reads.

    ``output_names``: the pipeline's outputs in order (``view0 ..``, ``label``,
    ``index``; or ``image``, ``index``); ``last_batch``: its epoch-end policy;
    ``files``: the ``FolderFiles`` a file reader reads (for error messages);
    ``reader``: the ``ExternalSourceReader`` feeding it; ``table_size``: rows of
    the box table it reads; ``keep_alive``: objects whose memory its compiled ops
    read; ``checked``: encoded-image nodes already gated (``checked_images``).
    """

    output_names: list[str] = field(default_factory=list)
    last_batch: str = "partial"
    files: Any = None
    reader: Any = None
    table_size: int | None = None
    keep_alive: list = field(default_factory=list)
    checked: list = field(default_factory=list)


_DESCRIPTIONS: "weakref.WeakKeyDictionary[Pipeline, PipelineDescription]" = weakref.WeakKeyDictionary()


def current_pipeline() -> Pipeline:
    """The pipeline being defined, or RuntimeError when none is (outside a ``@pipeline_def`` function)."""
    pipe = Pipeline.current()
    if pipe is None:
        raise RuntimeError("ContrastiveCrop DALI ops must be called while a pipeline is defined "
                           "(inside a @pipeline_def function)")
    return pipe


def description_of(pipe: Pipeline) -> PipelineDescription | None:
    """The description recorded for ``pipe`` (None for a pipeline no ContrastiveCrop op or builder touched)."""
    return _DESCRIPTIONS.get(pipe)


def describe(pipe: Pipeline | None = None, **fields) -> PipelineDescription:
    """The description of ``pipe`` (default: the one being defined), created on first use, with ``fields`` set."""
    pipe = current_pipeline() if pipe is None else pipe
    description = _DESCRIPTIONS.setdefault(pipe, PipelineDescription())
    for name, value in fields.items():
        setattr(description, name, value)
    return description


def keep_alive(*objects) -> None:
    """Tie ``objects`` (table mappings, arrays whose address compiled code holds) to the pipeline being defined."""
    describe().keep_alive.extend(objects)


def resolve_table(table: BoxTable | str) -> BoxTable:
    """A ``BoxTable``, or the name of one to attach (refused with a clear message when it does not exist)."""
    if isinstance(table, str):
        return BoxTable.attach(table)
    if not isinstance(table, BoxTable):
        raise TypeError(f"table must be a BoxTable or a table name, got {type(table).__name__}")
    table.words  # raises if closed
    return table


def check_device(device: str) -> str:
    """``"cpu"`` or ``"gpu"``, or ValueError."""
    if device not in DEVICES:
        raise ValueError(f"device must be one of {DEVICES}, got {device!r}")
    return device


def check_pipeline_device(device: str) -> str:
    """``check_device``, and a GPU only in a pipeline that has a ``device_id``."""
    check_device(device)
    if device == "gpu" and current_pipeline().device_id is None:
        raise ValueError("device='gpu' needs a pipeline with a device_id (it was built with device_id=None)")
    return device


def worker_processes(pipe: Pipeline) -> list:
    """The ``multiprocessing`` processes of ``pipe``'s parallel external source (none for other pipelines).

    DALI offers no public handle on them: this reads its worker pool's private
    attributes, in this one place, and gives an empty list where they are absent.
    """
    pool = getattr(getattr(pipe, "_py_pool", None), "pool", None)
    return list(getattr(pool, "_processes", ()))
