"""Failing a DALI batch from inside the graph, with what failed: one gate, its numbered kinds, and their parser.

Code inside ``numba_function`` cannot raise (DALI drops its exceptions), so a
check computes an anchor, int32 (2,) per sample: ``(0, 0)`` when all is well,
``(payload, reason)`` with ``reason >= 1`` when not; ``fail_batch_unless``
slices an empty tensor of shape ``(gate, 1, 0)`` at that anchor with
``out_of_bounds_policy="error"``. DALI's error then reads ``input_shape={gate x
1 x 0}, slice_anchor={payload x reason x 0}``, which ``gate_failure`` parses back.
Feed the gate's empty output to the op that must not run on a failing batch.
"""
from __future__ import annotations

import re

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode
from nvidia.dali.plugin.numba.fn.experimental import numba_function

from ..core.encoded import image_status_at
from .graph import describe

GATE_INDEX = 1  # payload: the sample's global index, outside the box table (reason 1)
GATE_IMAGE = 2  # payload: the sample's global index; reason: its ``core.encoded.REASONS`` key
GATE_VIEWS = 3  # payload: the view; reason: a key of ``VIEW_REASONS``
VIEW_REASONS = {1: "the image is not 3-channel RGB", 2: "its window is empty or outside the image",
                3: "fewer windows than views"}
_FAILURE = re.compile(r"input_shape=\{(\d+) x 1 x 0\}, slice_anchor=\{(-?\d+) x (-?\d+) x 0\}")


def fail_batch_unless(anchor: DataNode, gate: int) -> DataNode:
    """An empty uint8 (0,) per sample; the batch fails when a sample's ``anchor`` (int32 (2,)) is not ``(0, 0)``."""
    good = fn.zeros(shape=[gate, 1, 0], dtype=types.UINT8)
    passed = fn.slice(good, fn.cast(anchor, dtype=types.INT32), [1, 1], axes=[0, 1], out_of_bounds_policy="error")
    return fn.squeeze(passed, axes=[0, 1])


def gate_failure(message: str) -> tuple[int, int, int] | None:
    """``(gate, payload, reason)`` of the gate that failed a batch, from DALI's error ``message`` (None: no gate)."""
    match = _FAILURE.search(message)
    return None if match is None else tuple(int(v) for v in match.groups())


def checked_indices(indices: DataNode, num_samples: int) -> tuple[DataNode, DataNode]:
    """``indices`` as int64 (1,), and a gate (``GATE_INDEX``) failing the batch when one is outside
    ``[0, num_samples)``: feed it to the op that must not run on such a batch."""
    indices = fn.reshape(fn.cast(indices, dtype=types.INT64), shape=[1])
    outside = fn.cast((indices < 0) | (indices >= num_samples), dtype=types.INT64)
    # int32 casts saturate: an index beyond int32 stays outside the table, and reads as its nearest int32
    anchor = fn.cat(fn.cast(indices * outside, dtype=types.INT32), fn.cast(outside, dtype=types.INT32), axis=0)
    describe(table_size=int(num_samples))
    return indices, fail_batch_unless(anchor, GATE_INDEX)


def checked_images(jpegs: DataNode, indices: DataNode) -> DataNode:
    """``jpegs`` (encoded images, uint8 1-D), through a gate (``GATE_IMAGE``) that fails the batch on a damaged
    file before any decoder (or ``fn.peek_image_shape``) reads it. Call it on the reader's output and decode what it
    returns.

    Each sample's bytes are checked in compiled code (``core.encoded.image_status_at``: format, JPEG segments
    and markers, end of image, PNG chunks, declared size at most ``MAX_IMAGE_PIXELS`` and what the bytes can
    hold). ``ContrastiveCropIterator`` turns a failure into a ``ValueError`` naming the file and why.
    ``contrastive_crop_views`` calls it (once) itself.
    """
    checked = describe().checked
    if any(node is jpegs for node in checked):
        return jpegs

    def run(anchor, data, index):
        reason, _, _ = image_status_at(data.ctypes.data, data.size)
        anchor[0] = 0 if reason == 0 else min(max(index[0], -2147483647), 2147483647)  # int32
        anchor[1] = reason

    def setup(outs, ins):
        for sample in range(len(outs[0])):
            outs[0][sample][0] = 2

    index = fn.reshape(fn.cast(indices, dtype=types.INT64), shape=[1])
    anchor = numba_function(jpegs, index, run_fn=run, setup_fn=setup, out_types=[types.INT32], outs_ndim=[1],
                            in_types=[types.UINT8, types.INT64], ins_ndim=[1, 1], device="cpu")
    # The decoders read the bytes through the gate: nothing decodes a batch holding a damaged file.
    jpegs = fn.cat(jpegs, fail_batch_unless(anchor, GATE_IMAGE), axis=0)
    checked.append(jpegs)
    return jpegs
