"""Make docs/show.png, the README's picture of ``ccrop show``: ``.venv/bin/python scripts/docs_show.py``.

Demo JPEGs from scikit-image's photos, boxes from ``localize_boxes`` on the demo's
stand-in feature maps (as ``ccrop demo`` does), saved as a table file, drawn by
``ccrop show``, then reduced to a 256-colour PNG so the README stays light.
Needs the demo extra; deterministic for the seeds below.
"""
from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def main() -> int:
    from PIL import Image

    from ccrop_loaders import BoxTable
    from ccrop_loaders.tools.cli import main as ccrop
    from ccrop_loaders.tools.demo import OUTPUT_SIZE, stand_in_feature_maps
    from ccrop_loaders.folder import list_images, load_rgb
    from ccrop_loaders.tools.sample_data import make_image_folder
    from ccrop_loaders.trainer import localize_boxes

    out = ROOT / "docs" / "show.png"
    out.parent.mkdir(exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        images = Path(tmp) / "images"
        make_image_folder(images, 10, shorter_side=(160, 220))
        paths = [p for p, _ in list_images(images)[0]]
        boxes = localize_boxes(stand_in_feature_maps([load_rgb(p) for p in paths]), threshold=0.4,
                               input_size=OUTPUT_SIZE).numpy()
        table_file = Path(tmp) / "demo.boxes"
        with BoxTable.create(len(paths)) as table:
            table.write(np.arange(len(paths)), boxes)
            table.epoch, table.seed = 20, 2022
            table.save(table_file)
        os.chdir(tmp)  # short names in the figure's title
        rc = ccrop(["show", table_file.name, images.name, "--indices", "0,2,3", "--views", "2", "--size", "160",
                    "--dpi", "80", "--out", str(out)])
        if rc:
            return rc
        os.chdir(ROOT)
    Image.open(out).convert("RGB").quantize(256, method=Image.Quantize.MEDIANCUT).save(out, optimize=True)
    print(f"{out}: {out.stat().st_size:,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
