"""What ``ccrop bench`` times: one ``Contender`` per loader configuration, each running one epoch per call."""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

SIZE = (224, 224)  # the views' size
SCALE = (0.2, 1.0)


@dataclass
class Contender:
    """One loader configuration: ``run()`` reads ``items`` images (``views`` views each) once."""

    key: str
    label: str
    backend: str
    threads: int
    views: int
    items: int
    run: Callable[[], object]
    close: Callable[[], object] = field(default=lambda: None)

    @property
    def unit(self) -> str:
        return "img/s" if self.views == 1 else ("pairs/s" if self.views == 2 else f"{self.views}-view sets/s")


# ---------------------------------------------------------------- FFCV

def ffcv_decode_only_class():
    """``DecodeOnly``: an FFCV decoder that only decodes (libffcv's libjpeg-turbo ``imdecode``), the Loader ceiling.

    Built on first use, so that this module imports without FFCV.
    """
    global _DECODE_ONLY
    if _DECODE_ONLY is not None:
        return _DECODE_ONLY
    from dataclasses import replace

    import numba
    from ffcv.fields.rgb_image import SimpleRGBImageDecoder
    from ffcv.libffcv import imdecode
    from ffcv.pipeline.allocation_query import AllocationQuery
    from ffcv.pipeline.compiler import Compiler

    class DecodeOnly(SimpleRGBImageDecoder):
        """libjpeg-turbo full decode of every image (libffcv's imdecode), nothing else: the decode ceiling.

        ``per_thread``: decode into one buffer per thread (cache-hot, as our decoders do) rather than
        one per sample (as FFCV's decoders do). Outputs one byte per sample.
        """

        def __init__(self, per_thread: bool = True):
            super().__init__()
            self.per_thread = per_thread

        def declare_state_and_memory(self, previous_state):
            self.decoded_length = int(self.metadata["height"].max()) * int(self.metadata["width"].max()) * 3
            u8 = np.dtype("<u1")
            per_sample = 1 if self.per_thread else self.decoded_length
            return (replace(previous_state, jit_mode=True, shape=(1,), dtype=u8),
                    (AllocationQuery((1,), u8), AllocationQuery((per_sample,), u8)))

        def generate_code(self):
            mem_read, my_range, imdecode_c = self.memory_read, Compiler.get_iterator(), Compiler.compile(imdecode)
            decoded_length, per_thread = self.decoded_length, self.per_thread

            def decode(batch_indices, my_storage, metadata, storage_state):
                destination, per_sample = my_storage
                buffers = np.empty((numba.get_num_threads() if per_thread else 0, decoded_length), np.uint8)
                for i in my_range(len(batch_indices)):
                    field = metadata[batch_indices[i]]
                    h, w = np.int64(field["height"]), np.int64(field["width"])
                    buffer = buffers[numba.get_thread_id()] if per_thread else per_sample[i]
                    image = buffer[: h * w * 3].reshape(h, w, 3)
                    imdecode_c(mem_read(field["data_ptr"], storage_state), image, h, w, h, w, 0, 0, 1, 1, False,
                               False)
                    destination[i, 0] = image[0, 0, 0]
                return destination[: len(batch_indices)]

            decode.is_parallel = True
            return decode

    _DECODE_ONLY = DecodeOnly
    return DecodeOnly


_DECODE_ONLY = None


def _ffcv_loader(beton, count: int, threads: int, batch_size: int, passes: int, pipelines: dict):
    from ffcv.loader import Loader, OrderOption

    return Loader(str(beton), batch_size=batch_size, num_workers=threads, order=OrderOption.SEQUENTIAL,
                  drop_last=False, indices=np.tile(np.arange(count), passes),
                  pipelines={"label": None, "index": None, **pipelines})


def _epoch(loader) -> None:
    for _ in loader:
        pass


def ffcv_multiview(images, table, threads: int, views: int, batch_size: int, passes: int) -> Contender:
    """FFCV ``MultiViewContrastiveCropDecoder`` with ``views`` views (flip on)."""
    from ccrop_loaders.ffcv import MultiViewContrastiveCropDecoder

    loader = _ffcv_loader(images.beton, images.count, threads, batch_size, passes,
                          {"image": [MultiViewContrastiveCropDecoder(table, SIZE, num_views=views, flip=True)]})
    return Contender(f"ffcv_ccrop_{views}v", f"FFCV MultiViewContrastiveCropDecoder, {views} views", "ffcv", threads,
                     views, images.count * passes, lambda: _epoch(loader))


def ffcv_region(images, table, threads: int, batch_size: int, passes: int) -> Contender:
    """FFCV ``ContrastiveCropRegionDecoder``, two views' region rows (flip on): the CPU part of the GPU path."""
    from ccrop_loaders.ffcv import ContrastiveCropRegionDecoder

    loader = _ffcv_loader(images.beton, images.count, threads, batch_size, passes,
                          {"image": [ContrastiveCropRegionDecoder(table, 2, output_size=SIZE, flip=True)]})
    return Contender("ffcv_region_2v", "FFCV ContrastiveCropRegionDecoder, 2 views' region rows (no resize)", "ffcv",
                     threads, 2, images.count * passes, lambda: _epoch(loader))


def ffcv_contenders(images, table, threads: int, batch_size: int, passes: int) -> list[Contender]:
    """FFCV: ContrastiveCrop one view, decode-once two views and their region rows, FFCV RRC one and two pipelines,
    decode only."""
    from ffcv.fields.rgb_image import RandomResizedCropRGBImageDecoder
    from ffcv.pipeline import PipelineSpec

    from ccrop_loaders.ffcv import ContrastiveCropRGBImageDecoder

    def make(key, label, views, pipelines):
        loader = _ffcv_loader(images.beton, images.count, threads, batch_size, passes, pipelines)
        return Contender(key, label, "ffcv", threads, views, images.count * passes, lambda: _epoch(loader))

    def rrc():
        return RandomResizedCropRGBImageDecoder(SIZE, scale=SCALE)

    return [
        make("ffcv_rrc", "FFCV RandomResizedCropRGBImageDecoder", 1, {"image": [rrc()]}),
        make("ffcv_ccrop", "FFCV ContrastiveCropRGBImageDecoder", 1,
             {"image": [ContrastiveCropRGBImageDecoder(table, SIZE)]}),
        make("ffcv_rrc_x2", "two FFCV RandomResizedCrop pipelines on one field", 2,
             {"image": [rrc()], "image2": PipelineSpec("image", rrc())}),
        ffcv_multiview(images, table, threads, 2, batch_size, passes),
        ffcv_region(images, table, threads, batch_size, passes),
        make("ffcv_decode_only", "FFCV Loader, libjpeg-turbo full decode only (imdecode, buffer per thread)", 1,
             {"image": [ffcv_decode_only_class()(per_thread=True)]}),
    ]


# ---------------------------------------------------------------- DALI

def dali_gpu_count() -> int:
    """CUDA devices DALI sees (0 without a GPU or a driver)."""
    try:
        from nvidia.dali.backend import GetCUDADeviceCount

        return int(GetCUDADeviceCount())
    except Exception:  # noqa: BLE001  (no driver: DALI raises various errors)
        return 0


def _dali_pipeline(kind: str, files: list[str], table, device: str, batch_size: int, threads: int, views: int):
    from nvidia.dali import fn, pipeline_def, types

    from ccrop_loaders.dali import contrastive_crop_views

    decoder = "mixed" if device == "gpu" else "cpu"

    @pipeline_def(batch_size=batch_size, num_threads=threads, device_id=0 if device == "gpu" else None,
                  prefetch_queue_depth=2, seed=0)
    def pipe():
        jpegs, index = fn.readers.file(files=files, labels=list(range(len(files))), name="Reader",
                                       random_shuffle=False)
        if kind.startswith("ccrop"):
            return tuple(contrastive_crop_views(jpegs, index, table, size=SIZE, num_views=views, flip=True,
                                                device=device, decode=kind.split("_")[1]))
        if kind == "rrc_random_crop":
            out = [fn.resize(fn.decoders.image_random_crop(jpegs, device=decoder, output_type=types.RGB,
                                                           random_area=SCALE), size=SIZE, antialias=True)
                   for _ in range(views)]
        elif kind == "rrc_decode_once":
            image = fn.decoders.image(jpegs, device=decoder, output_type=types.RGB)
            out = [fn.random_resized_crop(image, size=SIZE, random_area=SCALE, antialias=True) for _ in range(views)]
        else:
            raise ValueError(kind)
        return tuple(fn.flip(v, horizontal=fn.random.coin_flip()) for v in out)

    p = pipe()
    p.build()
    return p


class DaliEpochs:
    """Runs exactly ``batches`` iterations per call, keeping up to the queue depth in flight and nothing after:
    a pipeline must not work ahead while the other contenders are timed."""

    def __init__(self, pipe, batches: int, depth: int = 2):
        self.pipe, self.batches, self.depth = pipe, batches, depth
        pipe.schedule_run()  # the first call prefetches `depth` iterations: consume them
        for _ in range(depth):
            pipe.outputs()

    def __call__(self) -> None:
        p, batches = self.pipe, self.batches
        ahead = min(self.depth, batches)
        for _ in range(ahead):
            p.schedule_run()
        out = None
        for i in range(batches):
            out = p.outputs()
            if i + ahead < batches:
                p.schedule_run()
        if hasattr(out[0], "as_cpu"):  # GPU: wait for the work
            out[0].as_cpu()

    def close(self) -> None:
        self.pipe = None


DALI_LABELS = {
    "ccrop_once": "DALI ContrastiveCrop, decode once",
    "ccrop_slice": "DALI ContrastiveCrop, decode each window (image_slice)",
    "rrc_random_crop": "DALI RRC: decoders.image_random_crop per view",
    "rrc_decode_once": "DALI RRC: decode once + random_resized_crop per view",
}


def dali_contender(kind: str, images, table, device: str, threads: int, batch_size: int, passes: int,
                   views: int = 2) -> Contender:
    batches = max(1, math.ceil(images.count * passes / batch_size))
    epochs = DaliEpochs(_dali_pipeline(kind, images.files, table, device, batch_size, threads, views), batches)
    suffix = "" if views == 2 else f", {views} views"
    return Contender(f"dali_{device}_{kind}" + ("" if views == 2 else f"_{views}v"),
                     f"{DALI_LABELS[kind]} ({device}){suffix}", f"dali-{device}", threads, views, batches * batch_size,
                     epochs, epochs.close)


def dali_contenders(images, table, device: str, threads: int, batch_size: int, passes: int,
                    quick: bool) -> list[Contender]:
    kinds = ["rrc_random_crop", "rrc_decode_once", "ccrop_once"] + ([] if quick else ["ccrop_slice"])
    return [dali_contender(k, images, table, device, threads, batch_size, passes) for k in kinds]


# ---------------------------------------------------------------- the original method (PIL + torch DataLoader)

class OriginalViews:
    """The method as its authors ran it (map-style torch Dataset): PIL decode, per view a ContrastiveCrop window
    (``sample_crop``), PIL crop + plain BILINEAR resize (torchvision's ``resized_crop`` on PIL images), random flip.
    Item ``i`` is image ``i % len(files)``; returns the views as uint8 (H, W, 3) arrays."""

    def __init__(self, files: list[str], boxes: np.ndarray, passes: int, views: int = 2):
        self.files, self.boxes, self.passes, self.views = files, boxes, passes, views

    def __len__(self) -> int:
        return len(self.files) * self.passes

    def __getitem__(self, i: int):
        import random

        from PIL import Image

        from ccrop_loaders.core import sample_crop

        n = i % len(self.files)
        with open(self.files[n], "rb") as f:  # torchvision's pil_loader
            img = Image.open(f).convert("RGB")
        out = []
        for v in range(self.views):
            top, left, h, w = sample_crop(img.height, img.width, self.boxes[n], scale=SCALE, alpha=0.6, index=n,
                                          view=v)
            view = img.crop((left, top, left + w, top + h)).resize(SIZE[::-1], Image.BILINEAR)
            if random.random() < 0.5:
                view = view.transpose(Image.FLIP_LEFT_RIGHT)
            out.append(np.array(view))  # a copy, as torchvision's ToTensor makes
        return tuple(out)


def original_contender(images, boxes: np.ndarray, threads: int, batch_size: int, passes: int) -> Contender:
    import torch.utils.data

    loader = torch.utils.data.DataLoader(OriginalViews(images.files, boxes, passes), batch_size=batch_size,
                                         shuffle=False, num_workers=threads, persistent_workers=True,
                                         prefetch_factor=2)

    def close():
        iterator = getattr(loader, "_iterator", None)
        if iterator is not None:
            iterator._shutdown_workers()

    return Contender("original_pil", "original: PIL + ContrastiveCrop + BILINEAR resize, torch DataLoader",
                     "pytorch", threads, 2, images.count * passes, lambda: _epoch(loader), close)


# ---------------------------------------------------------------- ceilings outside any Loader

class _ThreadedDecode:
    """Decode every image ``passes`` times in ``threads`` threads (both decoders release the GIL)."""

    def __init__(self, images, threads: int, passes: int, decode_one: Callable[[int, int], None]):
        from concurrent.futures import ThreadPoolExecutor

        self.pool = ThreadPoolExecutor(threads)
        self.threads, self.total, self.count, self.decode_one = threads, images.count * passes, images.count, decode_one

    def _share(self, t: int) -> None:
        for i in range(t, self.total, self.threads):
            self.decode_one(t, i % self.count)

    def __call__(self) -> None:
        for future in [self.pool.submit(self._share, t) for t in range(self.threads)]:
            future.result()

    def close(self) -> None:
        self.pool.shutdown()


def libjpeg_contender(images, threads: int, passes: int) -> Contender:
    """Full-image ``decode_region`` (our libjpeg-turbo binding) into a buffer per thread."""
    from ccrop_loaders.ffcv.jpeg import REGION_OK, decode_region

    h_max, w_max = images.shapes.max(axis=0)
    length = (int(h_max) + 16) * (int(w_max) + 16) * 3
    buffers = np.empty((threads, length), np.uint8)
    placed = np.zeros((threads, 6), np.int64)

    def decode_one(t: int, n: int) -> None:
        data = images.data[n]
        h, w = images.shapes[n]
        code = decode_region(data.ctypes.data, data.size, 8, int(h), int(w), 0, 0, int(h), int(w),
                             buffers[t].ctypes.data, length, placed[t].ctypes.data)
        if code != REGION_OK:
            raise RuntimeError(f"decode_region failed on {images.files[n]} (code {code})")

    run = _ThreadedDecode(images, threads, passes, decode_one)
    return Contender("bare_libjpeg", "libjpeg-turbo full decode (decode_region), no Loader", "bare", threads, 1,
                     images.count * passes, run, run.close)


def libjpeg_region_contender(images, table, threads: int, passes: int, views: int = 2) -> Contender:
    """``decode_region`` of the union of each image's ``views`` ContrastiveCrop windows (``SIZE`` views, flip off),
    at the region decoder's DCT scale, into a buffer per thread: its decoding work, without a Loader."""
    from ccrop_loaders.core import sample_crop
    from ccrop_loaders.ffcv.decoders import dct_eighths, union_region
    from ccrop_loaders.ffcv.jpeg import REGION_OK, decode_region

    h_max, w_max = images.shapes.max(axis=0)
    length = int(h_max) * int(w_max) * 3
    buffers = np.empty((threads, length), np.uint8)
    placed = np.zeros((threads, 6), np.int64)
    boxes = table.read(np.arange(images.count)).astype(np.float64)
    layout = np.array([[*SIZE, 0]] * views, np.int64)
    plans = []
    for n, (h, w) in enumerate(images.shapes):
        windows = np.array([(*sample_crop(int(h), int(w), boxes[n], scale=SCALE, alpha=0.6, seed=table.seed,
                                          epoch=table.epoch, index=n, view=v), 0) for v in range(views)], np.int64)
        eighths = int(dct_eighths(windows, layout))
        plans.append((eighths, *(int(x) for x in union_region(windows, eighths))))

    def decode_one(t: int, n: int) -> None:
        data = images.data[n]
        h, w = images.shapes[n]
        code = decode_region(data.ctypes.data, data.size, *plans[n][:1], int(h), int(w), *plans[n][1:],
                             buffers[t].ctypes.data, length, placed[t].ctypes.data)
        if code != REGION_OK:
            raise RuntimeError(f"decode_region failed on {images.files[n]} (code {code})")

    run = _ThreadedDecode(images, threads, passes, decode_one)
    return Contender("bare_libjpeg_region", f"libjpeg-turbo decode of {views} views' union region, no Loader", "bare",
                     threads, views, images.count * passes, run, run.close)


def pillow_contender(images, threads: int, passes: int) -> Contender:
    """Pillow's decoder (its own libjpeg), full decode, no Loader."""
    import io

    from PIL import Image

    blobs = [d.tobytes() for d in images.data]

    def decode_one(t: int, n: int) -> None:
        with Image.open(io.BytesIO(blobs[n])) as img:
            img.load()

    run = _ThreadedDecode(images, threads, passes, decode_one)
    return Contender("bare_pillow", "Pillow full decode, no Loader", "bare", threads, 1, images.count * passes, run,
                     run.close)
