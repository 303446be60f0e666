"""A small SSL trainer on ContrastiveCrop views: MoCo v2 or SimCLR, with FFCV or DALI.

RandomResizedCrop warm-up, a localization pass through ``BoxUpdater`` on the
schedule's epochs, ContrastiveCrop afterwards, a checkpoint every epoch (model,
optimizer, box table) and ``--resume``. Single process, or ``torchrun`` (gloo on
CPU, NCCL on GPU): each rank localizes its shard, the updater all-gathers.

    python -m pipelines.train_ssl --backend ffcv --tiny          # demo data, 2 CPU cores, about a minute
    python -m pipelines.train_ssl --backend ffcv --tiny --crop rrc   # the baseline: RandomResizedCrop all along
    torchrun --nnodes 2 --nproc-per-node 8 -m pipelines.train_ssl --backend dali --data /imagenet/train \\
        --arch resnet18 --epochs 100 --batch-size 256 --checkpoint run/ckpt.pt
"""
from __future__ import annotations

import argparse
import datetime
import hashlib
import itertools
import json
import math
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from ccrop_loaders import BoxTable, BoxUpdater, ContrastiveCropSchedule, restore_table, table_state
from ccrop_loaders.folder import folder_fingerprint, list_images
from ccrop_loaders.trainer.augment import IMAGENET_MEAN, IMAGENET_STD, simclr_augment
from ccrop_loaders.trainer.checkpoint import checkpoint_epoch, save_checkpoint

MAX_DIST_TIMEOUT_S = 30 * 86400  # the largest --dist-timeout (30 days): torch's timedelta and gloo's ms hold it
CONTENT_SAMPLES = 64  # files whose bytes go into a data identity

# ----------------------------------------------------------------- models


def conv_bn(cin: int, cout: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True))


class BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.body = nn.Sequential(conv_bn(cin, cout, stride), nn.Conv2d(cout, cout, 3, 1, 1, bias=False),
                                  nn.BatchNorm2d(cout))
        self.skip = nn.Identity() if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return F.relu(self.body(x) + self.skip(x))


def encoder(arch: str) -> tuple[nn.Module, int]:
    """(module mapping images to the last conv feature maps (N, C, h, w), C)."""
    if arch == "tiny":
        return nn.Sequential(conv_bn(3, 32, 2), conv_bn(32, 64, 2), conv_bn(64, 128, 2)), 128
    if arch == "resnet18":
        layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
                       nn.MaxPool2d(3, 2, 1)], 64
        for cout, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            layers += [BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)]
            cin = cout
        return nn.Sequential(*layers), 512
    raise ValueError(f"unknown arch {arch!r} (tiny, resnet18)")


class SSLModel(nn.Module):
    """Encoder + projection head; ``features`` gives the maps localization uses."""

    def __init__(self, arch: str, dim: int = 128):
        super().__init__()
        self.features, width = encoder(arch)
        self.head = nn.Sequential(nn.Linear(width, width), nn.ReLU(inplace=True), nn.Linear(width, dim))

    def forward(self, x):
        return F.normalize(self.head(self.features(x).mean(dim=(2, 3))), dim=1)


def info_nce(q: torch.Tensor, k: torch.Tensor, negatives: torch.Tensor | None, temperature: float) -> torch.Tensor:
    """MoCo: positives q.k, negatives from the queue. SimCLR (negatives None): NT-Xent over the 2B views."""
    if negatives is not None:
        logits = torch.cat([(q * k).sum(1, keepdim=True), q @ negatives.T], dim=1) / temperature
        return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))
    z = torch.cat([q, k])
    sim = (z @ z.T) / temperature
    sim.fill_diagonal_(float("-inf"))
    n = len(q)
    targets = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(q.device)
    return F.cross_entropy(sim, targets)


# ----------------------------------------------------------------- data


def crop_on(args) -> str:
    """Where FFCV's views are cropped and resized: ``--crop-on``, by default gpu where CUDA is present."""
    return args.crop_on or ("gpu" if torch.cuda.is_available() else "cpu")


def region_loader(beton: str, table: BoxTable, args, device: torch.device, distributed: bool):
    """``--crop-on gpu``: ``ssl_loader``'s Loader with ``ContrastiveCropRegionDecoder`` (the CPU decodes each
    image's two views' region into a row) and the ``ViewStage`` that makes the views on ``device`` (float
    (B, 2, 3, H, W) in [0, 1], as the augmentation takes them), and the rows' ``RowFormat``."""
    from ffcv.fields.basics import IntDecoder
    from ffcv.loader import OrderOption
    from ffcv.transforms import ToDevice, ToTensor

    from ccrop_loaders.core import ViewGroup
    from ccrop_loaders.ffcv import ContrastiveCropRegionDecoder, Loader
    from ccrop_loaders.trainer import ViewStage

    decoder = ContrastiveCropRegionDecoder(table, 2, output_size=(args.size, args.size), alpha=args.alpha, flip=True)
    loader = Loader(beton, batch_size=args.batch_size, num_workers=args.workers, order=OrderOption.RANDOM,
                    drop_last=True, distributed=distributed, seed=args.seed, pipelines={
                        "image": [decoder, ToTensor(), ToDevice(device, non_blocking=True)],
                        "label": [IntDecoder(), ToTensor()],
                        "index": [IntDecoder(), ToTensor()],
                    })
    return loader, ViewStage(decoder.groups, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0)), decoder.row_format


class Data:
    """The backend's two loaders behind one interface: ``views(epoch)`` yields (view1, view2, index) as
    normalized float (B, 3, H, W) on ``device``; ``full_images()`` yields (images, index)."""

    def __init__(self, backend: str, folder: Path, beton: Path | None, table: BoxTable, args, device: torch.device,
                 start_epoch: int = 0, dali_checkpoint: bytes | None = None):
        """``start_epoch``: the epoch the training loader starts at (its order is keyed by it); ``dali_checkpoint``:
        the DALI training pipeline's state to go on from (a resume)."""
        self.backend, self.device, self.args = backend, device, args
        distributed = dist.is_initialized()
        if backend == "ffcv":
            from .ffcv_ssl import localization_loader, ssl_loader

            self.stage = None
            if crop_on(args) == "gpu":
                self.train, self.stage, self.row_format = region_loader(str(beton), table, args, device,
                                                                        distributed)
            else:
                self.train = ssl_loader(str(beton), table, batch_size=args.batch_size, num_workers=args.workers,
                                        device=device, size=args.size, alpha=args.alpha, distributed=distributed,
                                        seed=args.seed)
            self.train.next_epoch = start_epoch  # FFCV keys each epoch's order by (seed, epoch)
            self.full = localization_loader(str(beton), batch_size=args.batch_size, num_workers=args.workers,
                                            device=device, size=args.size, distributed=distributed)
            self.augment = [simclr_augment(generator=None).to(device)] * 2
        else:
            from ccrop_loaders.folder import FolderFiles

            from .dali_ssl import localization_iterator, ssl_iterator

            files = FolderFiles.from_folder(folder)
            dali_device = "gpu" if device.type == "cuda" else "cpu"
            if args.show:
                print("building the DALI pipelines: their numba ops compile once (about 10 s on 2 cores)...",
                      flush=True)
            self.train = ssl_iterator(files, table, batch_size=args.batch_size, num_threads=args.workers,
                                      device=dali_device, size=args.size, alpha=args.alpha, seed=args.seed,
                                      checkpointing=args.checkpoint is not None, checkpoint=dali_checkpoint)
            self.full = localization_iterator(files, batch_size=args.batch_size, num_threads=args.workers,
                                              device=dali_device, size=args.size)
        self.mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1) * 255
        self._compiled: set[str] = set()

    @property
    def steps(self) -> int:
        """Training steps per epoch on this rank."""
        return len(self.train)

    @property
    def localization_steps(self) -> int:
        return len(self.full)

    def _first_batch_notice(self, which: str) -> None:
        if self.backend == "ffcv" and which not in self._compiled:
            self._compiled.add(which)
            if self.args.show:
                tqdm.write(f"compiling the FFCV {which} pipeline on its first batch, once (about 20 s on 2 cores)...")

    def normalize(self, views: torch.Tensor) -> torch.Tensor:
        return (views.to(self.device).permute(0, 3, 1, 2).float() - self.mean) / self.std

    def views(self):
        self._first_batch_notice("training")
        if self.backend == "ffcv" and self.stage is not None:  # --crop-on gpu: views made on the device
            for rows, _, index in self.train:
                (views,) = self.stage.from_rows(rows, self.row_format)
                yield self.augment[0](views[:, 0]), self.augment[1](views[:, 1]), index.flatten()
        elif self.backend == "ffcv":
            for images, _, index in self.train:
                yield self.augment[0](images[:, 0]), self.augment[1](images[:, 1]), index.flatten()
        else:  # augmented inside the DALI pipeline
            for batch in self.train:
                yield self.normalize(batch["views"][0]), self.normalize(batch["views"][1]), batch["index"]

    def full_images(self):
        self._first_batch_notice("localization")
        if self.backend == "ffcv":
            for images, _, index in self.full:
                yield self.normalize(images), index.flatten()
        else:
            for batch in self.full:
                yield self.normalize(batch["image"]), batch["index"]


# ----------------------------------------------------------------- training


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--backend", choices=["ffcv", "dali"], default="ffcv")
    p.add_argument("--method", choices=["moco", "simclr"], default="moco")
    p.add_argument("--crop", choices=["ccrop", "rrc"], default="ccrop",
                   help="ccrop: the ContrastiveCrop schedule (warm-up, localization, ContrastiveCrop); rrc: "
                        "RandomResizedCrop all along, no localization (the baseline)")
    p.add_argument("--data", type=Path, help="image folder (ImageFolder layout); without it, --tiny makes demo data")
    p.add_argument("--arch", choices=["tiny", "resnet18"], default="resnet18")
    p.add_argument("--epochs", type=int, default=100)
    p.add_argument("--warmup-epochs", type=int, default=None, help="default: 20%% of epochs")
    p.add_argument("--loc-interval", type=int, default=None, help="default: 20%% of epochs")
    p.add_argument("--batch-size", type=int, default=256)
    p.add_argument("--size", type=int, default=224)
    p.add_argument("--alpha", type=float, default=0.6)
    p.add_argument("--loc-threshold", "--threshold", dest="threshold", type=float, default=0.1,
                   help="localization threshold k on the normalized heat map (default 0.1; raise it, e.g. 0.3-0.5, "
                        "when boxes grow to the whole image)")
    p.add_argument("--lr", type=float, default=0.06)
    p.add_argument("--temperature", type=float, default=0.2)
    p.add_argument("--queue", type=int, default=65536, help="MoCo queue length")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--max-resolution", type=int, default=None)
    p.add_argument("--crop-on", choices=["gpu", "cpu"], default=None,
                   help="FFCV: where the views are cropped and resized. gpu: the CPU decodes only each image's "
                        "views' region, the torch view stage makes the views on the training device; cpu: "
                        "MultiViewContrastiveCropDecoder. Default: gpu where CUDA is present, else cpu")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dist-timeout", type=float, default=1800.0,
                   help="seconds a collective (all-gather, DDP all-reduce, barrier) waits for the other ranks before "
                        "failing, so that a job one rank has left ends instead of hanging (default 1800, at most "
                        f"{MAX_DIST_TIMEOUT_S}); also how long a rank waits for a node's conversion to show signs of "
                        "life")
    p.add_argument("--checkpoint", type=Path, default=None,
                   help="saved every epoch; never replaced by an older epoch's state")
    p.add_argument("--resume", nargs="?", const="yes", choices=["yes", "auto"], default=None,
                   help="continue from --checkpoint; '--resume auto': continue when it exists, else start (one "
                        "command line that survives torchrun's restarts)")
    p.add_argument("--accept-data-change", action="store_true",
                   help="resume although --data holds other images than the checkpoint's (names, sizes or "
                        "content differ): its boxes then go to these images by index")
    p.add_argument("--tiny", action="store_true",
                   help="demo data, tiny encoder, 64 px, 4 epochs: about a minute on 2 CPU cores")
    if p.parse_known_args(argv)[0].tiny:  # new defaults; options given on the command line still win
        p.set_defaults(arch="tiny", size=64, epochs=4, batch_size=None, queue=256, warmup_epochs=1, loc_interval=1,
                       lr=0.03)  # batch None: the largest up to 16 that splits each rank's share evenly
    args = p.parse_args(argv)
    if args.resume and args.checkpoint is None:
        p.error("--resume needs --checkpoint")
    if args.resume == "yes" and not args.checkpoint.is_file():
        p.error(f"--resume: there is no checkpoint at {args.checkpoint} (a run saves one there with --checkpoint; "
                "'--resume auto' starts when there is none)")
    args.resume = args.resume is not None and args.checkpoint.is_file()
    if not args.resume and args.checkpoint is not None:
        saved = checkpoint_epoch(args.checkpoint)
        if saved:
            p.error(f"--checkpoint {args.checkpoint} holds epoch {saved} of a run, which a new run would replace "
                    "with older epochs: continue it with --resume (or --resume auto), or choose another --checkpoint")
    if not (math.isfinite(args.dist_timeout) and 0 < args.dist_timeout <= MAX_DIST_TIMEOUT_S):
        p.error(f"--dist-timeout must be a number of seconds in (0, {MAX_DIST_TIMEOUT_S}], got {args.dist_timeout}")
    return args


def setup_distributed(timeout_s: float) -> torch.device:
    """Join the torchrun job when WORLD_SIZE > 1 (NCCL on GPU, gloo on CPU); return this rank's device.

    Collectives fail after ``timeout_s`` seconds without the other ranks: a rank
    that fails raises and exits (nothing collective runs on an error path), its
    peers fail on their next collective or at the timeout, and torchrun ends the job.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        timeout = datetime.timedelta(seconds=timeout_s)
        rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
        store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=timeout))
        # keys of its own per torchrun restart: a restarted group must not read the addresses of the one that died
        store = dist.PrefixStore(f"ccrop/attempt_{os.environ.get('TORCHELASTIC_RESTART_COUNT', '0')}/", store)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo", store=store, rank=rank,
                                world_size=world, timeout=timeout)
    if torch.cuda.is_available():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        torch.cuda.set_device(local)
        return torch.device("cuda", local)
    return torch.device("cpu")


def data_identity(folder: Path) -> str:
    """SHA-256 (hex) of what identifies an image folder's data: its classes, each file's relative path, label and
    size, and the bytes of ``CONTENT_SAMPLES`` files spread over the listing. Modification times are left out: a
    byte-identical copy (``cp -r``, staging to node-local disk) has the same identity."""
    samples, classes = list_images(folder)
    digest = hashlib.sha256(json.dumps(classes).encode())
    for path, label in samples:
        digest.update(f"{path.relative_to(folder).as_posix()}\0{label}\0{path.stat().st_size}\n".encode())
    for i in np.unique(np.linspace(0, len(samples) - 1, min(CONTENT_SAMPLES, len(samples))).round().astype(int)):
        digest.update(samples[i][0].read_bytes())
    return digest.hexdigest()


def load_resume_state(checkpoint: Path, folder: Path, data_id: str, crop: str, method: str, world: int,
                      accept_data_change: bool = False) -> dict:
    """``checkpoint``'s state (on the CPU), refused when it was trained on other images (its boxes index those;
    unless ``accept_data_change``), with the other --crop or --method, or on another number of ranks (its per-rank
    state has one entry per rank)."""
    state = torch.load(checkpoint, map_location="cpu", weights_only=True)
    if "data_id" in state:
        same = state["data_id"] == data_id
    else:  # older checkpoints: keyed by the folder's listing with modification times
        same = state.get("data") in (None, folder_fingerprint(folder))
    if not same and not accept_data_change:
        raise SystemExit(f"--resume: {checkpoint} was trained on other images than {folder} (names, sizes or "
                         "content differ): its boxes would belong to other samples. Point --data at the images it "
                         "was trained on, start without --resume, or pass --accept-data-change to resume on these")
    if state.get("crop") not in (None, crop):
        raise SystemExit(f"--resume: {checkpoint} was trained with --crop {state['crop']}, this run has --crop {crop}: "
                         f"resume with --crop {state['crop']}, or start without --resume")
    saved_method = state.get("method", "moco" if "key_model" in state else "simclr")
    if saved_method != method:
        raise SystemExit(f"--resume: {checkpoint} was trained with --method {saved_method}, this run has --method "
                         f"{method}: resume with --method {saved_method}, or start without --resume")
    ranks = state.get("ranks")
    if ranks is not None and len(ranks) != world:
        raise SystemExit(f"--resume: {checkpoint} was saved by {len(ranks)} rank(s), this run has {world}: its "
                         f"per-rank state (random streams, MoCo queues, DALI readers) resumes on {len(ranks)} ranks")
    return state


def rank_state(model: nn.Module, key_model: nn.Module | None, queue: torch.Tensor | None, data: Data) -> dict:
    """This rank's part of a checkpoint, what a resume restores besides rank 0's model: the random streams, the
    BatchNorm statistics (each rank's own after its last step), MoCo's queue and key statistics, the DALI reader."""
    state = {"torch_rng": torch.get_rng_state(), "buffers": {n: b.cpu() for n, b in model.named_buffers()}}
    if torch.cuda.is_available():
        state["cuda_rng"] = torch.cuda.get_rng_state()
    if key_model is not None:
        state["key_buffers"] = {n: b.cpu() for n, b in key_model.named_buffers()}
        state["queue"] = queue.cpu()
    if data.backend == "dali" and data.args.checkpoint is not None:
        state["dali"] = torch.frombuffer(bytearray(data.train.checkpoints()[0]), dtype=torch.uint8)
    return state


def gather_rank_states(mine: dict) -> list[dict] | None:
    """Every rank's ``rank_state`` on rank 0 (None on the others): a collective, on the success path only."""
    if not dist.is_initialized():
        return [mine]
    everyone = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(mine, everyone, dst=0)
    return everyone


def restore_buffers(module: nn.Module, buffers: dict) -> None:
    for name, buffer in module.named_buffers():
        buffer.copy_(buffers[name])


def converted_beton(folder: Path, work: Path, args) -> tuple[Path, int]:
    """``work/train.beton`` converted from ``folder`` (keyed to it: other or changed images are converted again) and
    its number of samples (the readable images). One process per node converts, a long job on ImageNet; the
    others wait for its record, not in a collective that --dist-timeout would end, and fail if it failed or showed
    no sign of life for --dist-timeout."""
    from ccrop_loaders.ffcv.convert import converted_samples, ensure_converted, wait_converted

    beton = work / "train.beton"
    options = dict(max_resolution=args.max_resolution, workers=args.workers)
    if args.checkpoint is None or int(os.environ.get("LOCAL_RANK", "0")) == 0:  # None: a private work folder
        ensure_converted(folder, beton, **options)
    else:
        wait_converted(folder, beton, timeout_s=args.dist_timeout, **options)
    return beton, converted_samples(beton)


def tiny_batch_size(num_samples: int, world_size: int) -> int:
    """The largest batch up to 16 that divides each rank's share: --tiny trains on every sample."""
    share = max(1, num_samples // world_size)
    return max(b for b in range(1, 17) if share % b == 0)


def save_run(path: Path, state: dict) -> None:
    """Save ``state`` to ``path`` unless it holds a newer epoch (another run writing it); one-line errors."""
    saved = checkpoint_epoch(path)
    if saved is not None and saved > state["epoch"]:
        raise SystemExit(f"--checkpoint: {path} holds epoch {saved}, newer than this run's {state['epoch']} (another "
                         "run writes it?): not replaced")
    try:
        save_checkpoint(state, path)  # a kill or a full disk while saving leaves the previous checkpoint
    except OSError as err:
        raise SystemExit(f"--checkpoint: {err}") from None


def started(iterable):
    """``iterable`` with its first item already fetched: a progress bar made over it afterwards leaves that first
    wait (a first batch compiles its pipeline) out of its rate and ETA."""
    it = iter(iterable)
    for first in it:
        return itertools.chain([first], it)
    return iter(())


@torch.no_grad()
def localization_pass(model: SSLModel, data: Data, updater: BoxUpdater, show: bool) -> None:
    model.eval()
    for images, index in tqdm(started(data.full_images()), desc="localizing", total=data.localization_steps,
                              leave=False, unit="batch", disable=not show):
        updater.update(model.features(images), index)
    updater.flush()
    model.train()


def main(argv=None) -> dict:
    args = parse_args(argv)
    device = setup_distributed(args.dist_timeout)
    rank = dist.get_rank() if dist.is_initialized() else 0
    show = args.show = rank == 0
    torch.manual_seed(args.seed)
    if args.data is not None and not args.data.is_dir():
        raise SystemExit(f"--data: no image folder at {args.data}")
    with tempfile.TemporaryDirectory() as tmp:
        work = (args.checkpoint.parent if args.checkpoint else Path(tmp))
        work.mkdir(parents=True, exist_ok=True)
        folder = args.data
        if folder is None:
            if not args.tiny:
                raise SystemExit("--data is required (or --tiny for demo data)")
            from ccrop_loaders.tools.sample_data import make_image_folder

            folder = work / "demo_images"
            private = args.checkpoint is None  # in this process's own temporary folder
            if (rank == 0 or private) and not folder.exists():
                make_image_folder(folder, 48, shorter_side=(80, 120))
            if dist.is_initialized():
                dist.barrier()
        data_id = data_identity(folder)  # checkpoints are keyed to the images their boxes index
        world = dist.get_world_size() if dist.is_initialized() else 1
        # loaded before converting: a refused resume must not have replaced the run's .beton
        resume_state = load_resume_state(args.checkpoint, folder, data_id, args.crop, args.method, world,
                                         args.accept_data_change) if args.resume else None
        if args.backend == "ffcv":
            beton, num_samples = converted_beton(folder, work, args)
        else:
            from ccrop_loaders.folder import FolderFiles

            beton, num_samples = None, FolderFiles.from_folder(folder).num_samples
        if args.batch_size is None:
            args.batch_size = tiny_batch_size(num_samples, dist.get_world_size() if dist.is_initialized() else 1)
        with BoxTable.create(num_samples) as table:
            return train(args, device, folder, data_id, resume_state, beton, table, show)


def train(args, device: torch.device, folder: Path, data_id: str, state: dict | None, beton: Path | None,
          table: BoxTable, show: bool) -> dict:
    """Train on ``table``'s views; returns the history: ``losses`` per epoch, ``localized_at`` (epochs),
    ``boxes_before``/``boxes_after`` float32 (N, 4), ``boxes_at`` {epoch: boxes after that epoch's localization},
    ``seconds`` {"train": per epoch, "localize": per pass} (wall time, FFCV's first-batch compile included),
    ``use_boxes``, ``table_epoch`` and the trained ``model`` (``SSLModel``)."""
    schedule = ContrastiveCropSchedule(args.epochs, args.warmup_epochs, args.loc_interval)
    rrc = args.crop == "rrc"
    table.seed = args.seed
    model = SSLModel(args.arch).to(device)
    key_model = SSLModel(args.arch).to(device) if args.method == "moco" else None
    if key_model is not None:
        key_model.load_state_dict(model.state_dict())
        key_model.requires_grad_(False)
    queue = F.normalize(torch.randn(args.queue, 128, device=device), dim=1) if key_model is not None else None
    optimizer = torch.optim.SGD(model.parameters(), lr=args.lr, momentum=0.9, weight_decay=1e-4)
    start_epoch, mine = 0, None
    rank = dist.get_rank() if dist.is_initialized() else 0
    if state is not None:  # load_state_dict copies the CPU tensors to the model's and optimizer's device
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        mine = state["ranks"][rank] if "ranks" in state else None  # older checkpoints: rank 0's state only
        if key_model is not None:
            key_model.load_state_dict(state["key_model"])
            queue = (state["queue"] if mine is None else mine["queue"]).to(device)
        if mine is not None and key_model is not None:
            restore_buffers(key_model, mine["key_buffers"])
        restore_table(table, state["boxes"])
        start_epoch = state["epoch"]
        localized = list(state.get("localized_at", []))
        if show:
            print(f"resumed at epoch {start_epoch} of {args.epochs}: boxes localized at epochs {localized}, "
                  f"{'ContrastiveCrop' if table.use_boxes else 'RandomResizedCrop warm-up'}")
    else:
        localized = []
    dali_checkpoint = None if mine is None or "dali" not in mine else mine["dali"].numpy().tobytes()
    data = Data(args.backend, folder, beton, table, args, device, start_epoch, dali_checkpoint)
    if mine is not None:  # the random streams as the run left them after its last epoch
        torch.set_rng_state(mine["torch_rng"])
        if "cuda_rng" in mine and torch.cuda.is_available():
            torch.cuda.set_rng_state(mine["cuda_rng"])
    world = dist.get_world_size() if dist.is_initialized() else 1
    used = data.steps * args.batch_size * world
    if show and used < len(table):
        print(f"note: each epoch trains on {used} of {len(table)} samples ({world} rank(s) x {data.steps} steps x "
              f"batch {args.batch_size}); the rest of each rank's shuffled share is dropped (drop_last)")
    ddp = torch.nn.parallel.DistributedDataParallel(model) if dist.is_initialized() else model
    if mine is not None:  # after DDP, which gives every rank rank 0's buffers
        restore_buffers(model, mine["buffers"])
    history = {"losses": [], "boxes_before": table.read(), "localized_at": localized, "boxes_at": {}, "health": {},
               "seconds": {"train": [], "localize": []}}
    # an exception in this block stops the updater without a flush (a collective) and goes on up: this rank
    # prints it and exits non-zero, and the other ranks fail on their next collective
    with BoxUpdater(table, threshold=args.threshold, input_size=args.size) as updater:
        epochs = tqdm(range(start_epoch, args.epochs), desc="epochs", initial=start_epoch, total=args.epochs,
                      unit="epoch", disable=not show, smoothing=0.9)  # ETA from the latest epochs, not the compiles
        for epoch in epochs:
            if not rrc and schedule.localize_at(epoch):
                start = time.perf_counter()
                localization_pass(model, data, updater, show)
                history["seconds"]["localize"].append(time.perf_counter() - start)
                history["localized_at"].append(epoch)
                history["boxes_at"][epoch] = table.read()
                history["health"][epoch] = health = updater.health()
                if show:
                    tqdm.write(f"epoch {epoch}: localized {health}")
                    if health.warning():
                        tqdm.write(f"warning: {health.warning()}")
            if rrc:
                table.epoch, table.use_boxes = epoch, False
            else:
                schedule.apply(table, epoch)
            start = time.perf_counter()
            lr = args.lr * 0.5 * (1 + math.cos(math.pi * epoch / args.epochs))
            for group in optimizer.param_groups:
                group["lr"] = lr
            total, count = 0.0, 0
            bar = tqdm(started(data.views()), desc=f"epoch {epoch} ({'ContrastiveCrop' if table.use_boxes else 'RRC'})",
                       total=data.steps, unit="step", leave=False, disable=not show)
            for view1, view2, _ in bar:
                q = ddp(view1)
                if key_model is not None:
                    with torch.no_grad():
                        for pk, pq in zip(key_model.parameters(), model.parameters()):
                            pk.mul_(0.99).add_(pq.detach(), alpha=0.01)
                        k = key_model(view2)
                    loss = info_nce(q, k, queue, args.temperature)
                    queue = torch.cat([k, queue])[: len(queue)]
                else:
                    loss = info_nce(q, ddp(view2), None, args.temperature)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total, count = total + loss.item(), count + 1
                bar.set_postfix(loss=f"{loss.item():.3f}")
            history["seconds"]["train"].append(time.perf_counter() - start)
            history["losses"].append(total / max(count, 1))
            if show:
                tqdm.write(f"epoch {epoch}: loss {history['losses'][-1]:.4f} ({count} steps, "
                           f"{'ContrastiveCrop' if table.use_boxes else 'RandomResizedCrop'})")
            if args.checkpoint is not None:
                ranks = gather_rank_states(rank_state(model, key_model, queue, data))
                if show:
                    save_run(args.checkpoint, {
                        "model": model.state_dict(), "optimizer": optimizer.state_dict(), "epoch": epoch + 1,
                        "boxes": table_state(table), "data_id": data_id, "localized_at": history["localized_at"],
                        "crop": args.crop, "method": args.method, "ranks": ranks,
                        **({} if key_model is None else {"key_model": key_model.state_dict(), "queue": queue})})
    history["boxes_after"] = table.read()
    history["use_boxes"], history["table_epoch"] = table.use_boxes, table.epoch
    history["model"] = model
    if show:
        full = np.array([0, 0, 1, 1], dtype=np.float32)
        located = np.abs(history["boxes_after"] - full).max(axis=1) > 1e-3
        moved = np.abs(history["boxes_after"] - history["boxes_before"]).max(axis=1) > 1e-3
        print(f"boxes: {int(located.sum())} of {len(located)} samples have an object box smaller than the whole "
              f"image ({int(moved.sum())} changed in this run); localized at epochs {history['localized_at']}")
    return history


if __name__ == "__main__":
    main()
