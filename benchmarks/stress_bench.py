"""Stress: a writer process rewrites every box at full speed while an FFCV Loader and a DALI pipeline read the table.

Each row flips between two boxes A and B, so every view must be the one window A
or window B gives (a torn row, half A and half B, gives neither): FFCV views are
compared pixel for pixel on a raw .beton, DALI windows exactly. Reports torn or
wrong outputs, windows outside their image, and resident memory growth from the
end of the first epoch to the last.

    python -m benchmarks.stress_bench [--epochs 20 --images 64]
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import resource
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ccrop_loaders import BoxTable, sample_crop
from ccrop_loaders.core.table_layout import pack_boxes, unpack_boxes
from ccrop_loaders.folder import list_images, load_rgb
from ccrop_loaders.tools.sample_data import make_image_folder

BOX_A = (0.05, 0.1, 0.45, 0.5)
BOX_B = (0.5, 0.55, 0.95, 0.9)
SIZE = (32, 32)
SEED, EPOCH = 5, 3


@dataclass
class StressReport:
    ffcv_views: int
    ffcv_bad: int
    dali_windows: int
    dali_bad: int
    outside: int
    writes: int
    saw_a: int  # outputs that only box A gives: the loaders saw both boxes, so reads overlapped the writes
    saw_b: int
    rss_first_mb: float
    rss_last_mb: float

    @property
    def rss_growth(self) -> float:
        return self.rss_last_mb / self.rss_first_mb - 1


def _rewrite_forever(name: str, started) -> None:
    table = BoxTable.attach(name)
    rows, flip = np.arange(len(table)), False
    boxes = {False: np.tile(BOX_A, (len(table), 1)), True: np.tile(BOX_B, (len(table), 1))}
    table.write(rows, boxes[True])
    started.set()
    while True:
        table.write(rows, boxes[flip])
        flip = not flip


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def stress(epochs: int = 20, num_images: int = 64, workers: int = 2, *, work: Path | None = None) -> StressReport:
    """Run the stress for ``epochs`` epochs of both loaders over ``num_images`` images (see module docstring)."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.loader import OrderOption
    from nvidia.dali import fn, pipeline_def

    from ccrop_loaders.dali import contrastive_crop_windows
    from ccrop_loaders.ffcv import ContrastiveCropRGBImageDecoder, Loader
    from ccrop_loaders.ffcv.convert import convert_folder
    from ccrop_loaders.core.resample import resize_crop, scratch_size

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(work or tmp)
        make_image_folder(work / "images", num_images, shorter_side=(48, 96), seed=11)
        convert_folder(work / "images", work / "raw.beton", write_mode="raw", workers=workers)
        files = [str(p) for p, _ in list_images(work / "images")[0]]
        images = [load_rgb(p) for p in files]

        def windows(box):  # from the box as the table stores it (1/65535 steps), as the loaders see it
            stored = unpack_boxes(pack_boxes(np.array([box])))[0].astype(np.float64)
            return [sample_crop(*im.shape[:2], stored, seed=SEED, epoch=EPOCH, index=i)
                    for i, im in enumerate(images)]

        window_a, window_b = windows(BOX_A), windows(BOX_B)
        expected_views = []  # per sample: (view from window A, view from window B)
        for image, pair in zip(images, zip(window_a, window_b)):
            views = []
            for window in pair:
                out = np.empty((*SIZE, 3), np.uint8)
                resize_crop(image, *window, False, out, np.empty(scratch_size(*image.shape[:2], SIZE), np.int64))
                views.append(out)
            expected_views.append(views)

        with BoxTable.create(num_images) as table:
            table.seed, table.epoch = SEED, EPOCH
            table.write(np.arange(num_images), np.tile(BOX_A, (num_images, 1)))
            ctx = mp.get_context("spawn")
            started = ctx.Event()
            writer = ctx.Process(target=_rewrite_forever, args=(table.name, started), daemon=True)
            writer.start()
            try:
                if not started.wait(120):
                    raise RuntimeError("the writer process did not start")
                loader = Loader(str(work / "raw.beton"), batch_size=8, num_workers=workers,
                                order=OrderOption.RANDOM, pipelines={
                                    "image": [ContrastiveCropRGBImageDecoder(table, SIZE)], "label": None,
                                    "index": [IntDecoder()]})

                @pipeline_def(batch_size=8, num_threads=workers, device_id=None)
                def dali_windows():
                    jpegs, index = fn.readers.file(files=files, labels=list(range(num_images)), random_shuffle=True)
                    shapes = fn.peek_image_shape(jpegs)
                    return contrastive_crop_windows(shapes, index, table, num_views=1), shapes, index

                pipe = dali_windows()
                pipe.build()
                report = StressReport(0, 0, 0, 0, 0, 0, 0, 0, 0.0, 0.0)
                for epoch in range(epochs):
                    for views, index in loader:
                        for view, i in zip(views, index[:, 0]):
                            is_a, is_b = (np.array_equal(view, e) for e in expected_views[int(i)])
                            report.ffcv_views += 1
                            report.ffcv_bad += not (is_a or is_b)
                            report.saw_a += is_a and not is_b
                            report.saw_b += is_b and not is_a
                    for _ in range(-(-num_images // 8)):
                        wins, shapes, index = (np.asarray(o.as_tensor()) for o in pipe.run())
                        for (top, left, h, w), (height, width, _), i in zip(wins[:, 0], shapes, index[:, 0]):
                            report.dali_windows += 1
                            window = (int(top), int(left), int(h), int(w))
                            report.dali_bad += window not in (window_a[int(i)], window_b[int(i)])
                            report.saw_a += window == window_a[int(i)] != window_b[int(i)]
                            report.saw_b += window == window_b[int(i)] != window_a[int(i)]
                            report.outside += not (0 <= top and 0 <= left and top + h <= height
                                                   and left + w <= width and h > 0 and w > 0)
                    if epoch == 0:
                        report.rss_first_mb = _rss_mb()
                report.rss_last_mb = _rss_mb()
                report.writes = table.writes
            finally:
                writer.kill()
                writer.join(30)
            del pipe, loader
    return report


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--images", type=int, default=64)
    p.add_argument("--workers", type=int, default=2)
    args = p.parse_args(argv)
    r = stress(args.epochs, args.images, args.workers)
    print(f"\n== stress: {args.epochs} epochs x {args.images} images, FFCV and DALI reading while a process rewrites "
          f"every box ({r.writes:,} table writes; outputs of box A {r.saw_a}, of box B {r.saw_b})")
    print(f"  FFCV views checked        {r.ffcv_views:>10,}   wrong or torn: {r.ffcv_bad}")
    print(f"  DALI windows checked      {r.dali_windows:>10,}   wrong or torn: {r.dali_bad}, outside the image: "
          f"{r.outside}")
    print(f"  resident memory           {r.rss_first_mb:>8.1f} MB after epoch 1 -> {r.rss_last_mb:.1f} MB after "
          f"epoch {args.epochs} ({100 * r.rss_growth:+.1f}%, goal < +5%)")


if __name__ == "__main__":
    main()
