"""ContrastiveCropCallback with Lightning on the CPU: one process, and two gloo processes (DDP)."""
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pl = pytest.importorskip("pytorch_lightning")

from ccrop_loaders import FULL_BOX, BoxTable  # noqa: E402
from ccrop_loaders.tools.sample_data import make_image_folder  # noqa: E402
from pipelines.lightning_ssl import build  # noqa: E402

IMAGES = 24
REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    root = tmp_path_factory.mktemp("lightning") / "images"
    make_image_folder(root, IMAGES, shorter_side=(40, 64), seed=3)
    return root


def test_the_schedule_runs_and_the_table_travels_with_the_checkpoint(folder, tmp_path):
    with BoxTable.create(IMAGES) as table:
        module, loader, callback, trainer = build(folder, table, epochs=3, warmup_epochs=1, loc_interval=1,
                                                  batch_size=8)
        assert not table.use_boxes or table.epoch == 0
        trainer.fit(module, loader)
        assert sorted(callback.health) == [1]  # localized before epoch 1 (not at the last epoch)
        assert table.epoch == 2 and table.use_boxes
        boxes = table.read()
        assert not np.allclose(boxes, FULL_BOX)  # the pass wrote boxes
        trainer.save_checkpoint(tmp_path / "run.ckpt")
    with BoxTable.create(IMAGES) as fresh:
        module, loader, callback, trainer = build(folder, fresh, epochs=3, warmup_epochs=1, loc_interval=1,
                                                  batch_size=8)
        trainer.fit(module, loader, ckpt_path=tmp_path / "run.ckpt")  # all epochs done: restores, trains nothing
        assert np.array_equal(fresh.read(), boxes) and fresh.epoch == 2 and fresh.use_boxes


def test_ddp_two_gloo_processes_localize_their_shards(folder, tmp_path):
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(REPO)!r})
        import numpy as np
        from ccrop_loaders import FULL_BOX, BoxTable
        from pipelines.lightning_ssl import build
        if __name__ == "__main__":
            with BoxTable.create({IMAGES}) as table:
                module, loader, callback, trainer = build({str(folder)!r}, table, epochs=3, warmup_epochs=1,
                                                          loc_interval=1, batch_size=4, strategy="ddp_spawn",
                                                          devices=2)
                trainer.fit(module, loader)
                boxes = table.read()
                full = np.all(np.isclose(boxes, FULL_BOX), axis=1)
                print("rows written:", int((~full).sum()), "epoch", table.epoch, "use_boxes", table.use_boxes)
    """)
    script = tmp_path / "ddp.py"
    script.write_text(code)
    result = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=600, cwd=REPO)
    assert result.returncode == 0, result.stderr[-3000:]
    written = int(result.stdout.split("rows written:")[1].split()[0])
    assert written > IMAGES // 2 and "epoch 2 use_boxes True" in result.stdout  # both ranks' shards written
