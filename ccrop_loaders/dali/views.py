"""ContrastiveCrop views inside a DALI graph: decode (whole, per window, or the windows' union) then resize.

Call these inside a ``@pipeline_def`` function. The multi-crop form
(``contrastive_crop_groups``: per ``ViewGroup`` a list of views) is the one
implementation; the single-size calls are one group. ``decode="once"`` decodes
each image whole (``mixed`` on the GPU) and resizes each ROI out of it;
``"slice"`` decodes only each window (``decoders.image_slice``); ``"union"``
decodes once only the union of the sample's windows (libjpeg-turbo's crop
decoding on the CPU, nvJPEG's ROI decoding on the GPU) and resizes each ROI,
shifted by the region's origin, out of it. ``"auto"`` is
``AUTO_DECODE[device]`` (``docs`` and ``benchmarks/dali_bench.py`` give the
figures behind it). ``resize``: see ``dali.resize``. With the core's resampler,
``"union"`` and ``"once"`` give the same pixels, bit for bit; with DALI's they
agree up to one level of rounding.
"""
from __future__ import annotations

from collections.abc import Sequence

from nvidia.dali import fn, types
from nvidia.dali.data_node import DataNode

from ..core import BoxTable, ViewGroup, first_views
from ..core.groups import check_groups, check_view_size
from ..core.checks import check_count
from ..core.windows import view_params
from .gates import checked_images
from .graph import check_pipeline_device
from .resize import image_shapes, resize_rois_to, resolve_resize
from .windows import one_group, union_and_local_rois, windows_and_rois

DECODE_MODES = ("auto", "once", "slice", "union")
AUTO_DECODE = {"cpu": "union", "gpu": "once"}


def resolve_decode(decode: str, device: str) -> str:
    """The decode mode ``decode`` stands for on ``device``: ``"auto"`` becomes ``AUTO_DECODE[device]``."""
    if decode not in DECODE_MODES:
        raise ValueError(f"decode must be one of {DECODE_MODES}, got {decode!r}")
    return AUTO_DECODE[device] if decode == "auto" else decode


def _decode_views(jpegs: DataNode, windows: DataNode, rois: DataNode, sizes: Sequence[tuple[int, int]], device: str,
                  decode: str, resize: str) -> list[DataNode]:
    """View v (uint8 HWC ``sizes[v]``) of encoded ``jpegs`` for window v / ROI v; ``decode``, ``resize`` resolved."""
    decoder_device = "cpu" if device == "cpu" else "mixed"
    if decode == "once":
        images = fn.decoders.image(jpegs, device=decoder_device, output_type=types.RGB)
        return resize_rois_to(images, rois, sizes, resize)
    if decode == "union":
        union, local = union_and_local_rois(windows, rois, fn.peek_image_shape(jpegs), sizes, resize == "dali")
        region = fn.decoders.image_slice(jpegs, union[0], union[1], axes=[0, 1], device=decoder_device,
                                         output_type=types.RGB)
        return resize_rois_to(region, local, sizes, resize)
    views = []
    for v, size in enumerate(sizes):
        start = windows[v, 0:2]
        crop = fn.decoders.image_slice(jpegs, start, windows[v, 2:4], axes=[0, 1], device=decoder_device,
                                       output_type=types.RGB)
        offset = fn.cast(fn.stack(start[0], start[1], start[0], start[1]), dtype=types.FLOAT)
        views += resize_rois_to(crop, fn.reshape(rois[v] - offset, shape=[1, 4]), [size], resize)
    return views


def _view_sizes(groups: Sequence[ViewGroup]) -> list[tuple[int, int]]:
    return [g.size for g in groups for _ in range(g.num_views)]


def _split_groups(views: list[DataNode], groups: Sequence[ViewGroup]) -> list[list[DataNode]]:
    return [views[first:first + group.num_views] for first, group in zip(first_views(groups), groups)]


def crop_resize_views(jpegs: DataNode, windows: DataNode, rois: DataNode, *, num_views: int, size: Sequence[int],
                      device: str = "cpu", decode: str = "auto", resize: str = "auto") -> list[DataNode]:
    """``num_views`` views (uint8 HWC ``size``) of encoded images, from windows int32 (V, 4) ``(top, left,
    crop_height, crop_width)`` and ROIs float32 (V, 4) ``(y_start, x_start, y_end, x_end)`` (mirrored where
    ``x_start > x_end``), in pixels; V >= ``num_views``. ``decode``, ``resize``: see the module. A batch whose ROI
    is not inside its image fails (``gates.GATE_VIEWS``)."""
    out = check_view_size("size", size)
    views = check_count("num_views", num_views)
    device = check_pipeline_device(device)
    check_groups([ViewGroup(out, views)])
    return _decode_views(jpegs, windows, rois, [out] * views, device, resolve_decode(decode, device),
                         resolve_resize(resize, device))


def contrastive_crop_groups(jpegs: DataNode, indices: DataNode, table: BoxTable | str, groups: Sequence[ViewGroup],
                            *, alpha: float = 0.6, flip: bool = False, device: str = "cpu",
                            decode: str = "auto", resize: str = "auto") -> list[list[DataNode]]:
    """Multi-crop: per ``ViewGroup`` g, a list of ``groups[g].num_views`` views (uint8 HWC ``groups[g].size``) of
    encoded images ``jpegs``, all from one decode per image.

    ``indices`` are the samples' global indices in ``table``. View j of group g
    is the sampler's view ``first_views(groups)[g] + j``: its window equals
    ``sample_crop(H, W, box, index=i, view=first_views(groups)[g] + j,
    scale=group.scale, ratio=group.ratio, alpha=alpha, seed=table.seed,
    epoch=table.epoch)``, with the box (0, 0, 1, 1) and alpha 1 (RandomResizedCrop)
    for a group with ``use_boxes=False`` or while ``table.use_boxes`` is False.
    With ``flip`` each view is mirrored with probability 1/2, keyed like its crop
    (fused into the resize). ``device="gpu"`` decodes with ``mixed`` and resizes
    on the GPU; the windows are always computed on the CPU. The bytes pass
    ``checked_images`` first: a damaged file fails the batch with its global
    index before a decoder sees it.
    """
    block = view_params(groups, alpha, flip)
    device = check_pipeline_device(device)
    decode, resize = resolve_decode(decode, device), resolve_resize(resize, device)
    jpegs = checked_images(jpegs, indices)
    windows, rois = windows_and_rois(fn.peek_image_shape(jpegs), indices, table, block)
    return _split_groups(_decode_views(jpegs, windows, rois, _view_sizes(groups), device, decode, resize), groups)


def contrastive_crop_views(jpegs: DataNode, indices: DataNode, table: BoxTable | str, *,
                           size: tuple[int, int] = (224, 224), num_views: int = 2,
                           scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                           alpha: float = 0.6, flip: bool = False, device: str = "cpu",
                           decode: str = "auto", resize: str = "auto") -> list[DataNode]:
    """``num_views`` ContrastiveCrop views (uint8 HWC, ``size``) of encoded images ``jpegs``: one group of
    ``contrastive_crop_groups`` (view v is the sampler's view v)."""
    group = one_group(num_views, scale, ratio, size)
    return contrastive_crop_groups(jpegs, indices, table, [group], alpha=alpha, flip=flip, device=device,
                                   decode=decode, resize=resize)[0]


def _check_images(images: DataNode) -> DataNode:
    if not isinstance(images, DataNode):
        raise TypeError(f"images must be a DALI DataNode (decoded HWC images), got {type(images).__name__}")
    return images


def contrastive_crop_groups_decoded(images: DataNode, indices: DataNode, table: BoxTable | str,
                                    groups: Sequence[ViewGroup], *, alpha: float = 0.6, flip: bool = False,
                                    resize: str = "auto") -> list[list[DataNode]]:
    """``contrastive_crop_groups`` for already decoded images (pipelines that decode first: solo-learn, DALI's
    examples): HWC uint8 RGB images on the CPU or the GPU (``fn.decoders.image(..., device="mixed")``); per group a
    list of views, the same windows, computed on the CPU from the images' shapes, each view resized on the images'
    device (``resize="auto"``: the core's resampler for CPU images, DALI's for GPU images), on the CPU the pixels
    of ``decode="once"``. An index outside the table fails the batch, and with the core's resampler so does an
    image that is not 3-channel. The images are not checked for damage: call ``checked_images`` on the encoded
    bytes before your decoder."""
    images = _check_images(images)
    block = view_params(groups, alpha, flip)
    resize = resolve_resize(resize, images.device)
    _, rois = windows_and_rois(image_shapes(images), indices, table, block)
    return _split_groups(resize_rois_to(images, rois, _view_sizes(groups), resize), groups)


def contrastive_crop_decoded(images: DataNode, indices: DataNode, table: BoxTable | str, *,
                             size: tuple[int, int] = (224, 224), num_views: int = 2,
                             scale: tuple[float, float] = (0.2, 1.0), ratio: tuple[float, float] = (3 / 4, 4 / 3),
                             alpha: float = 0.6, flip: bool = False, resize: str = "auto") -> list[DataNode]:
    """``num_views`` ContrastiveCrop views (uint8 HWC, ``size``) of already decoded images: one group of
    ``contrastive_crop_groups_decoded``; a drop-in for ``fn.random_resized_crop`` after your decoder."""
    _check_images(images)
    group = one_group(num_views, scale, ratio, size)
    return contrastive_crop_groups_decoded(images, indices, table, [group], alpha=alpha, flip=flip,
                                           resize=resize)[0]
