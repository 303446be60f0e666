"""What a resume checks (method, crop, data, ranks), --resume auto, checkpoints never replaced by older epochs,
--dist-timeout bounds, and a full disk while saving a checkpoint."""
import errno
import os
import shutil

import pytest

from tests.conftest import mount_tiny_tmpfs

torch = pytest.importorskip("torch")

from ccrop_loaders.tools.sample_data import make_image_folder  # noqa: E402


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data") / "images"
    make_image_folder(folder, 12, shorter_side=(40, 60))
    return folder


def save(path, **state):
    torch.save({"epoch": 3, **state}, path)
    return path


def test_a_resume_with_the_other_method_crop_or_ranks_is_refused(tmp_path, images):
    from pipelines.train_ssl import data_identity, load_resume_state

    data_id = data_identity(images)
    simclr = save(tmp_path / "simclr.pt", data_id=data_id, crop="ccrop", method="simclr", ranks=[{}, {}])
    with pytest.raises(SystemExit, match="trained with --method simclr, this run has --method moco"):
        load_resume_state(simclr, images, data_id, "ccrop", "moco", 2)
    with pytest.raises(SystemExit, match="--crop ccrop, this run has --crop rrc"):
        load_resume_state(simclr, images, data_id, "rrc", "simclr", 2)
    with pytest.raises(SystemExit, match="saved by 2 rank"):
        load_resume_state(simclr, images, data_id, "ccrop", "simclr", 3)
    assert load_resume_state(simclr, images, data_id, "ccrop", "simclr", 2)["method"] == "simclr"
    older = save(tmp_path / "older.pt", key_model={}, queue=torch.zeros(2))  # before "method" was recorded
    with pytest.raises(SystemExit, match="--method moco, this run has --method simclr"):
        load_resume_state(older, images, data_id, "ccrop", "simclr", 1)


def test_a_byte_identical_copy_is_the_same_data_and_a_change_can_be_accepted(tmp_path, images):
    from pipelines.train_ssl import data_identity, load_resume_state

    copy = tmp_path / "copy"
    shutil.copytree(images, copy, copy_function=shutil.copyfile)  # new modification times, as cp -r
    assert data_identity(copy) == data_identity(images)
    checkpoint = save(tmp_path / "ckpt.pt", data_id=data_identity(images))
    assert load_resume_state(checkpoint, copy, data_identity(copy), "ccrop", "simclr", 1)["epoch"] == 3
    victim = sorted(copy.rglob("*.jpg"))[0]  # the first file's bytes are sampled
    data = bytearray(victim.read_bytes())
    data[-3] ^= 1
    victim.write_bytes(bytes(data))  # same name, same size
    assert data_identity(copy) != data_identity(images)
    with pytest.raises(SystemExit, match="other images .* --accept-data-change"):
        load_resume_state(checkpoint, copy, data_identity(copy), "ccrop", "simclr", 1)
    load_resume_state(checkpoint, copy, data_identity(copy), "ccrop", "simclr", 1, accept_data_change=True)


@pytest.mark.parametrize("value", ["inf", "1e14", "nan", "0", "-5", str(30 * 86400 + 1)])
def test_dist_timeouts_that_torch_cannot_hold_are_refused(value, capsys):
    from pipelines.train_ssl import parse_args

    with pytest.raises(SystemExit):
        parse_args(["--tiny", "--dist-timeout", value])
    assert "--dist-timeout must be a number of seconds in (0, 2592000]" in capsys.readouterr().err
    assert parse_args(["--tiny", "--dist-timeout", str(30 * 86400)]).dist_timeout == 30 * 86400


def test_resume_auto_and_no_older_epoch_over_a_checkpoint(tmp_path, capsys):
    from pipelines.train_ssl import parse_args, save_run

    ckpt = tmp_path / "ckpt.pt"
    assert parse_args(["--tiny", "--checkpoint", str(ckpt), "--resume", "auto"]).resume is False  # none yet: start
    save(ckpt)
    assert parse_args(["--tiny", "--checkpoint", str(ckpt), "--resume", "auto"]).resume is True
    assert parse_args(["--tiny", "--checkpoint", str(ckpt), "--resume"]).resume is True
    with pytest.raises(SystemExit):  # a new run would overwrite epoch 3 with epoch 1
        parse_args(["--tiny", "--checkpoint", str(ckpt)])
    assert "holds epoch 3 of a run" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="holds epoch 3, newer than this run's 2"):
        save_run(ckpt, {"epoch": 2})
    assert torch.load(ckpt, weights_only=True)["epoch"] == 3
    save_run(ckpt, {"epoch": 4})
    assert torch.load(ckpt, weights_only=True)["epoch"] == 4


@pytest.fixture(params=["tmpfs", "failing-fallocate"])
def full_disk(tmp_path, request, monkeypatch):
    folder = tmp_path / "disk"
    folder.mkdir()
    if request.param == "tmpfs":
        mount_tiny_tmpfs(folder, request)
    else:
        def no_room(fd, offset, length):
            if length > 1 << 20:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

        monkeypatch.setattr(os, "posix_fallocate", no_room)
    return folder


def test_a_full_disk_while_saving_a_checkpoint_is_the_projects_message(full_disk):
    from pipelines.train_ssl import save_run

    ckpt = full_disk / "ckpt.pt"
    save_run(ckpt, {"epoch": 1, "model": {"w": torch.zeros(1000)}})
    before = ckpt.read_bytes()
    with pytest.raises(SystemExit) as raised:  # torch.save: "enforce fail at inline_container.cc"
        save_run(ckpt, {"epoch": 2, "model": {"w": torch.zeros(1 << 19)}})  # 2 MiB
    message = str(raised.value)
    assert message.startswith("--checkpoint: ") and "No space left" in message and str(ckpt) in message
    assert "needed in" in message and "the old file is unchanged" in message
    assert ckpt.read_bytes() == before and sorted(p.name for p in full_disk.iterdir()) == ["ckpt.pt"]
