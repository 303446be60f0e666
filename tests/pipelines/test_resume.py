"""A resumed run is the run that was never stopped: N epochs straight against k epochs + --resume, bit for bit
(model, optimizer, boxes, every rank's random streams, BatchNorm statistics, MoCo queue, DALI reader), on 1 and 2
ranks (torchrun, gloo), FFCV and DALI."""
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

ROOT = Path(__file__).parents[2]
TORCHRUN = Path(sys.executable).with_name("torchrun")


def run(ranks: int, *args: str, env: dict | None = None, timeout: int = 600) -> str:
    command = [str(TORCHRUN), "--standalone", f"--nproc_per_node={ranks}",
               str(Path(__file__).with_name("run_hooked.py")), *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), **(env or {})})
    out = done.stdout.replace("\r", "\n")
    assert done.returncode == 0, out[-2000:] + done.stderr[-4000:]
    return out + done.stderr


def assert_same(a, b, where="state"):
    if isinstance(a, dict):
        assert sorted(a) == sorted(b), where
        for key in a:
            assert_same(a[key], b[key], f"{where}[{key!r}]")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b), where
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{where}[{i}]")
    elif isinstance(a, torch.Tensor):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b), f"{where} differs"
    else:
        assert a == b, f"{where}: {a!r} != {b!r}"


def losses(out: str) -> dict[int, str]:
    return {int(e): v for e, v in re.findall(r"epoch (\d+): loss ([\d.]+)", out)}


@pytest.mark.parametrize("backend, method, ranks", [("ffcv", "moco", 1), ("dali", "moco", 2), ("ffcv", "simclr", 2),
                                                     ("dali", "simclr", 1)])
def test_a_resumed_run_is_the_run_never_stopped(tmp_path, backend, method, ranks):
    pytest.importorskip("ffcv" if backend == "ffcv" else "nvidia.dali")
    from ccrop_loaders.tools.sample_data import make_image_folder

    make_image_folder(tmp_path / "images", 48, shorter_side=(80, 120))
    ckpt = tmp_path / "straight" / "ckpt.pt"
    common = ["--backend", backend, "--method", method, "--tiny", "--epochs", "3", "--data", str(tmp_path / "images")]
    # epoch 0 warm-up; the resumed part localizes at epoch 1, switches to ContrastiveCrop, trains epochs 1 and 2
    straight = run(ranks, *common, "--checkpoint", str(ckpt), env={"HOOK_COPY_AT": "1"})
    (tmp_path / "resumed").mkdir()
    resumed_ckpt = tmp_path / "resumed" / "ckpt.pt"
    shutil.copyfile(f"{ckpt}.at1", resumed_ckpt)
    resumed = run(ranks, *common, "--checkpoint", str(resumed_ckpt), "--resume")
    assert "resumed at epoch 1 of 3" in resumed
    assert losses(resumed) == {e: v for e, v in losses(straight).items() if e >= 1} and len(losses(resumed)) == 2
    a = torch.load(ckpt, map_location="cpu", weights_only=True)
    b = torch.load(resumed_ckpt, map_location="cpu", weights_only=True)
    assert a["epoch"] == 3 and len(a["ranks"]) == ranks and a["localized_at"] == [1]
    assert_same(a, b)


def test_one_command_line_survives_an_elastic_restart(tmp_path):
    """torchrun --max-restarts 1, rank 1 SIGKILLed after epoch 0 was saved: the restarted group resumes there
    (--resume auto) and ends the run; the checkpoint only ever moves forward."""
    pytest.importorskip("ffcv")
    from ccrop_loaders.tools.sample_data import make_image_folder

    make_image_folder(tmp_path / "images", 48, shorter_side=(80, 120))
    ckpt = tmp_path / "run" / "ckpt.pt"
    command = [str(TORCHRUN), "--standalone", "--nproc_per_node=2", "--max-restarts=1",
               str(Path(__file__).with_name("run_hooked.py")), "--backend", "ffcv", "--tiny", "--epochs", "3",
               "--data", str(tmp_path / "images"), "--checkpoint", str(ckpt), "--resume", "auto",
               "--dist-timeout", "60"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT), "HOOK_KILL_AT": "1"})
    out = (done.stdout + done.stderr).replace("\r", "\n")
    assert done.returncode == 0, out[-5000:]
    assert re.search(r"failed \(exitcode: -9\) local_rank: 1", out)  # the first launch did lose rank 1 (SIGKILL)
    assert "resumed at epoch 1 of 3" in out and "epoch 0: loss" in out.split("resumed at epoch")[0]
    assert "epoch 0: loss" not in out.split("resumed at epoch")[1]  # not begun again from scratch
    assert torch.load(ckpt, map_location="cpu", weights_only=True)["epoch"] == 3
