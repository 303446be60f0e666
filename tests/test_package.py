import subprocess
import sys


def test_core_imports_without_torch_ffcv_or_dali():
    code = ("import sys, ccrop_loaders as c; c.sample_crop(10, 10); t = c.BoxTable.create(2); t.close(); t.unlink(); "
            "bad = [m for m in ('torch', 'ffcv', 'nvidia.dali') if m in sys.modules]; assert not bad, bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names():
    import ccrop_loaders

    for name in ("sample_crop", "sample_crops", "BoxTable", "SIMCCROP_BOX", "localize_boxes"):
        assert getattr(ccrop_loaders, name) is not None
    assert ccrop_loaders.SIMCCROP_BOX == (0.25, 0.25, 0.75, 0.75)
