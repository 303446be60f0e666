"""Method validation: does the loop find objects, and do ContrastiveCrop's views share them more than RRC's?

On the object dataset (``ccrop_loaders.objects_data``: real objects pasted on
cluttered backgrounds, ground-truth boxes), the recipe's trainer
(``pipelines.train_ssl.train``: SimCLR, the tiny encoder, FFCV) pretrains the same
encoder with the same seed and budget twice per seed: RandomResizedCrop all along
(``--crop rrc``), and the ContrastiveCrop schedule (warm-up, localization passes
through ``BoxUpdater``, ContrastiveCrop). Once more through DALI (ContrastiveCrop,
first seed). Nothing differs between the arms but ``--crop``. Reported:

1. box quality: mean IoU of the localized boxes with the ground truth after each
   localization pass, against the full image's IoU;
2. view consistency (``diagnostics.view_consistency``): the share of view pairs in
   which both views hold >= 30% of the object, RRC vs ContrastiveCrop with the
   localized boxes, with the true boxes (upper bound) and with the full-image box
   (control: Beta positions alone), over 4 epochs of pairs;
3. k-NN accuracy (cosine, k = 20, weighted votes as in InstDisc) of held-out
   images against the training images, encoder features, mean and spread over seeds;
4. wall time of each phase, and localization's share of the ContrastiveCrop run.

Run: ``python -m benchmarks.method_bench`` (3 seeds, about 15 minutes on 2 CPU
cores) or ``--quick`` (about a minute). With a single localization pass (``--quick``)
the steady-state localization share is not measurable and reads n/a (JSON null):
that one pass holds FFCV's one-off compile. Writes ``OUT/method_bench.json``.
"""
from __future__ import annotations

import argparse
import json
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ccrop_loaders import BoxTable
from ccrop_loaders.tools.diagnostics import box_iou, view_consistency
from ccrop_loaders.tools.objects_data import ObjectDataset, make_object_dataset
from ccrop_loaders.trainer.augment import IMAGENET_MEAN, IMAGENET_STD

ALPHA = 0.6  # the paper's ImageNet value (objects here cover 5-40% of the image, as on ImageNet), fixed a priori
KNN_K, KNN_T = 20, 0.07
CONSISTENCY_EPOCHS = range(4)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a small run for CI: 180 images, 3 epochs, one seed, "
                                                        "DALI too (about a minute)")
    p.add_argument("--images", type=int, default=1530, help="training images (default 1530, 170 per object)")
    p.add_argument("--heldout", type=int, default=450, help="held-out images for k-NN (default 450, 50 per object)")
    p.add_argument("--epochs", type=int, default=20, help="training epochs per run (default 20; warm-up and "
                                                          "localization interval 20%% of them, as the paper)")
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--size", type=int, default=64, help="view and localization input side (default 64)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--no-dali", action="store_true", help="skip the DALI run")
    p.add_argument("--thresholds", type=float, nargs="+", default=[0.1, 0.3, 0.5],
                   help="localization thresholds k swept (ContrastiveCrop, first seed, FFCV; 0.1 is the main arm)")
    p.add_argument("--out", type=Path, default=Path("method_bench_out"), help="folder for the JSON (and the data)")
    args = p.parse_args(argv)
    if args.quick:
        args.images, args.heldout, args.epochs, args.seeds = 180, 45, 3, args.seeds[:1]
    if args.images < 9 or args.heldout < 9 or args.epochs < 2:
        p.error("--images and --heldout must be at least 9 (one per object) and --epochs at least 2")
    if not 2 <= args.batch_size <= args.images:  # the loaders drop the last partial batch: no step would train
        p.error(f"--batch-size must be from 2 to --images ({args.images}), got {args.batch_size}")
    return args


def recipe_args(args: argparse.Namespace, crop: str, seed: int, backend: str,
                threshold: float = 0.1) -> argparse.Namespace:
    """The recipe's options for one run: the arms differ only in ``crop`` (and the sweep in ``threshold``)."""
    from pipelines.train_ssl import parse_args as recipe_parse

    options = recipe_parse(["--backend", backend, "--method", "simclr", "--arch", "tiny", "--crop", crop,
                            "--size", str(args.size), "--epochs", str(args.epochs), "--batch-size",
                            str(args.batch_size), "--alpha", str(ALPHA), "--lr", "0.06", "--workers",
                            str(args.workers), "--seed", str(seed), "--loc-threshold", str(threshold)])
    options.show = False
    return options


class FullImages:
    """Whole images of a .beton resized to ``size``, in index order: one FFCV loader for every run (it compiles
    once)."""

    def __init__(self, beton: Path, size: int, workers: int):
        from pipelines.ffcv_ssl import localization_loader

        self.loader = localization_loader(str(beton), batch_size=256, num_workers=workers, size=size)
        self.mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255

    def features(self, model) -> torch.Tensor:
        """L2-normalized encoder features float32 (n, C), the final feature maps averaged."""
        model.eval()
        out = []
        with torch.no_grad():
            for images, _, _ in self.loader:
                x = (images.permute(0, 3, 1, 2).float() - self.mean) / self.std
                out.append(F.normalize(model.features(x).mean(dim=(2, 3)), dim=1))
        return torch.cat(out)


def knn_accuracy(train_x: torch.Tensor, train_y: np.ndarray, test_x: torch.Tensor, test_y: np.ndarray,
                 classes: int) -> float:
    """Weighted k-NN (cosine, k = 20, votes exp(sim / 0.07)) accuracy of ``test_x`` float (m, C) against
    ``train_x`` float (n, C), both L2-normalized."""
    sim = test_x @ train_x.T
    top, where = sim.topk(min(KNN_K, len(train_x)), dim=1)
    votes = torch.zeros(len(test_x), classes).scatter_add_(1, torch.from_numpy(train_y)[where], (top / KNN_T).exp())
    return float((votes.argmax(dim=1).numpy() == test_y).mean())


def one_run(args: argparse.Namespace, data: ObjectDataset, betons: dict[str, Path], images: dict[str, FullImages],
            crop: str, seed: int, backend: str, threshold: float = 0.1) -> dict:
    """Pretrain once; its box IoU per pass, view consistency, k-NN accuracy and phase times."""
    from pipelines.train_ssl import train

    options = recipe_args(args, crop, seed, backend, threshold)
    torch.manual_seed(seed)
    truth, sizes = data.boxes["train"], data.sizes["train"]
    with BoxTable.create(len(truth)) as table:
        history = train(options, torch.device("cpu"), data.folders["train"], "", None,
                        betons["train"] if backend == "ffcv" else None, table, show=False)
        boxes, table_seed = table.read(), table.seed
    start = time.perf_counter()
    knn = knn_accuracy(images["train"].features(history["model"]), data.labels["train"],
                       images["heldout"].features(history["model"]), data.labels["heldout"], len(data.classes))
    knn_s = time.perf_counter() - start
    epoch_s, pass_s = history["seconds"]["train"], history["seconds"]["localize"]
    run = {"crop": crop, "seed": seed, "backend": backend, "threshold": threshold, "knn_accuracy": knn,
           "final_loss": history["losses"][-1], "localized_at": history["localized_at"],
           "iou_per_pass": {int(e): float(box_iou(b, truth).mean()) for e, b in history["boxes_at"].items()},
           "area_per_pass": {int(e): float(np.mean((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])))
                             for e, b in history["boxes_at"].items()},
           "seconds": {"train": float(sum(history["seconds"]["train"])),
                       "localize": float(sum(history["seconds"]["localize"])),
                       "train_per_epoch": [float(s) for s in epoch_s],
                       "localize_per_pass": [float(s) for s in pass_s],
                       "knn": knn_s}}
    if crop == "ccrop":
        run["consistency_localized"] = view_consistency(boxes, truth, sizes, alpha=ALPHA, seed=table_seed,
                                                        epochs=CONSISTENCY_EPOCHS)
        run["located"] = float(np.mean(np.abs(boxes - np.array([0, 0, 1, 1])).max(axis=1) > 1e-3))
    spent = run["seconds"]["train"] + run["seconds"]["localize"]
    run["seconds"]["localize_share"] = run["seconds"]["localize"] / spent
    # steady state: without the first epoch's and first pass's one-off FFCV compile (None: one pass cannot tell)
    one_pass, one_epoch = (steady(pass_s) if pass_s else 0.0), steady(epoch_s)
    run["seconds"]["localize_share_steady"] = (None if one_pass is None or one_epoch is None else
                                               len(pass_s) * one_pass / (len(epoch_s) * one_epoch
                                                                         + len(pass_s) * one_pass))
    return run


def steady(seconds: list[float]) -> float | None:
    """A typical epoch's or pass's time without the first one's one-off compile: the median of three or more (the
    compile is an outlier), the second of two, None for one (every measurement holds the compile)."""
    if len(seconds) >= 3:
        return float(np.median(seconds))
    return float(seconds[1]) if len(seconds) == 2 else None


def random_encoder_knn(data: ObjectDataset, images: dict[str, FullImages], seed: int) -> float:
    """k-NN accuracy of the untrained encoder (the floor pretraining should rise above)."""
    from pipelines.train_ssl import SSLModel

    torch.manual_seed(seed)
    model = SSLModel("tiny")
    return knn_accuracy(images["train"].features(model), data.labels["train"], images["heldout"].features(model),
                        data.labels["heldout"], len(data.classes))


def spread(values: list[float | None]) -> dict:
    """Mean, std (ddof 1) and the values; mean and std None when a value is None (not measurable)."""
    if any(v is None for v in values):
        return {"mean": None, "std": None, "values": list(values)}
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=1)) if len(v) > 1 else 0.0, "values": v.tolist()}


def bench(args: argparse.Namespace, work: Path) -> dict:
    """Make the data, run every arm and seed, and gather the figures (the JSON's content)."""
    from ccrop_loaders.ffcv.convert import convert_folder

    seconds = {}
    start = time.perf_counter()
    data = make_object_dataset(work / "data", args.images, heldout=args.heldout, seed=0)
    seconds["make_data"] = time.perf_counter() - start
    start = time.perf_counter()
    betons = {}
    for split in ("train", "heldout"):
        betons[split] = work / f"{split}.beton"
        convert_folder(data.folders[split], betons[split], workers=args.workers)
    seconds["convert"] = time.perf_counter() - start
    images = {split: FullImages(betons[split], args.size, args.workers) for split in betons}
    truth, sizes = data.boxes["train"], data.sizes["train"]
    plan = [(crop, seed, "ffcv", 0.1) for seed in args.seeds for crop in ("rrc", "ccrop")]
    if not args.no_dali:
        plan.append(("ccrop", args.seeds[0], "dali", 0.1))
    plan += [("ccrop", args.seeds[0], "ffcv", k) for k in args.thresholds if k != 0.1]
    runs = []
    for crop, seed, backend, k in tqdm(plan, desc="pretraining runs", unit="run"):
        tqdm.write(f"  {backend} {crop} seed {seed} k {k} ...")
        runs.append(one_run(args, data, betons, images, crop, seed, backend, k))
        r = runs[-1]
        tqdm.write(f"  {backend} {crop} seed {seed}: k-NN {r['knn_accuracy']:.3f}, IoU per pass "
                   f"{r['iou_per_pass']}, train {r['seconds']['train']:.0f} s, localize "
                   f"{r['seconds']['localize']:.1f} s")
    start = time.perf_counter()
    floor = spread([random_encoder_knn(data, images, s) for s in args.seeds])
    consistency = {
        "rrc": spread([view_consistency(np.array([0.0, 0, 1, 1]), truth, sizes, alpha=1.0, seed=s,
                                        epochs=CONSISTENCY_EPOCHS) for s in args.seeds]),
        "ccrop_full_box": spread([view_consistency(np.array([0.0, 0, 1, 1]), truth, sizes, alpha=ALPHA, seed=s,
                                                   epochs=CONSISTENCY_EPOCHS) for s in args.seeds]),
        "ccrop_truth": spread([view_consistency(truth, truth, sizes, alpha=ALPHA, seed=s, epochs=CONSISTENCY_EPOCHS)
                               for s in args.seeds]),
        "ccrop_localized": spread([r["consistency_localized"] for r in runs
                                   if r["crop"] == "ccrop" and r["backend"] == "ffcv" and r["threshold"] == 0.1]),
    }
    seconds["baselines"] = time.perf_counter() - start
    ffcv = {crop: [r for r in runs if r["crop"] == crop and r["backend"] == "ffcv" and r["threshold"] == 0.1]
            for crop in ("rrc", "ccrop")}
    sweep = [{"threshold": r["threshold"], "iou": r["iou_per_pass"][max(r["iou_per_pass"])],
              "area": r["area_per_pass"][max(r["area_per_pass"])], "consistency": r["consistency_localized"],
              "located": r["located"], "knn_accuracy": r["knn_accuracy"]}
             for r in runs if r["crop"] == "ccrop" and r["backend"] == "ffcv" and r["seed"] == args.seeds[0]
             and r["threshold"] in args.thresholds + [0.1]]
    sweep.sort(key=lambda row: row["threshold"])
    passes = ffcv["ccrop"][0]["localized_at"]
    return {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}
        | {"alpha": ALPHA, "method": "simclr", "arch": "tiny", "knn": {"k": KNN_K, "temperature": KNN_T},
           "consistency": {"coverage": 0.3, "epochs": len(CONSISTENCY_EPOCHS)}, "classes": data.classes},
        "machine": {"platform": platform.platform(), "torch": torch.__version__, "threads": torch.get_num_threads()},
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "full_box_iou": float(box_iou(np.broadcast_to([0.0, 0, 1, 1], truth.shape), truth).mean()),
        "iou_per_pass": {str(e): spread([r["iou_per_pass"][e] for r in ffcv["ccrop"]]) for e in passes},
        "object_area": float(np.mean((truth[:, 2] - truth[:, 0]) * (truth[:, 3] - truth[:, 1]))),
        "area_per_pass": {str(e): spread([r["area_per_pass"][e] for r in ffcv["ccrop"]]) for e in passes},
        "consistency": consistency,
        "knn_accuracy": {"rrc": spread([r["knn_accuracy"] for r in ffcv["rrc"]]),
                         "ccrop": spread([r["knn_accuracy"] for r in ffcv["ccrop"]]),
                         "random_encoder": floor},
        "seconds": seconds | {
            "train_rrc": spread([r["seconds"]["train"] for r in ffcv["rrc"]]),
            "train_ccrop": spread([r["seconds"]["train"] for r in ffcv["ccrop"]]),
            "localize_ccrop": spread([r["seconds"]["localize"] for r in ffcv["ccrop"]]),
            "train_epoch_median_rrc": spread([float(np.median(r["seconds"]["train_per_epoch"])) for r in ffcv["rrc"]]),
            "train_epoch_median_ccrop": spread([float(np.median(r["seconds"]["train_per_epoch"]))
                                                for r in ffcv["ccrop"]]),
            "localize_pass_median": spread([float(np.median(r["seconds"]["localize_per_pass"])) for r in ffcv["ccrop"]]),
            "localize_share": spread([r["seconds"]["localize_share"] for r in ffcv["ccrop"]]),
            "localize_share_steady": spread([r["seconds"]["localize_share_steady"] for r in ffcv["ccrop"]])},
        "dali": next((r for r in runs if r["backend"] == "dali"), None),
        "threshold_sweep": sweep,
        "runs": runs,
    }


def table(result: dict) -> str:
    """The printed table (what the README shows)."""
    def ms(s: dict, pct: bool = False, digits: int = 3) -> str:
        if s["mean"] is None:
            return "n/a"
        f = 100.0 if pct else 1.0
        return f"{f * s['mean']:.{1 if pct else digits}f} ± {f * s['std']:.{1 if pct else digits}f}"

    n = len(result["settings"]["seeds"])
    sec = result["seconds"]
    lines = [(f"method validation: {result['settings']['images']} images, {result['settings']['epochs']} epochs, "
             f"{n} seed(s), mean ± std over seeds"),
             f"{'measure':<58} {'RRC':>16} {'ContrastiveCrop':>18}",
             f"{'box IoU with ground truth: full image':<58} {result['full_box_iou']:>16.3f} {'':>18}"]
    for epoch, s in result["iou_per_pass"].items():
        lines.append(f"{'  localized boxes after the pass before epoch ' + epoch:<58} {'':>16} {ms(s):>18}")
    lines.append(f"{'box area / image: objects (truth), localized (last pass)':<58} {result['object_area']:>16.3f} "
                 f"{ms(list(result['area_per_pass'].values())[-1]):>18}")
    c = result["consistency"]
    lines += [(f"{'view pairs both holding >= 30% of the object (%)':<58} {ms(c['rrc'], True):>16} "
              f"{ms(c['ccrop_localized'], True):>18}"),
              (f"{'  ContrastiveCrop with the true boxes (upper bound, %)':<58} {'':>16} "
              f"{ms(c['ccrop_truth'], True):>18}"),
              (f"{'  ContrastiveCrop with the full-image box (control, %)':<58} {'':>16} "
              f"{ms(c['ccrop_full_box'], True):>18}")]
    k = result["knn_accuracy"]
    lines += [f"{'k-NN accuracy, held-out images (%)':<58} {ms(k['rrc'], True):>16} {ms(k['ccrop'], True):>18}",
              f"{'  untrained encoder (%)':<58} {ms(k['random_encoder'], True):>16} {'':>18}",
              (f"{'training wall time (s)':<58} {ms(sec['train_rrc'], digits=1):>16} "
              f"{ms(sec['train_ccrop'], digits=1):>18}"),
              (f"{'  one epoch, median (s)':<58} {ms(sec['train_epoch_median_rrc'], digits=2):>16} "
              f"{ms(sec['train_epoch_median_ccrop'], digits=2):>18}"),
              f"{'localization passes wall time (s)':<58} {'':>16} {ms(sec['localize_ccrop'], digits=1):>18}",
              f"{'  one pass, median (s)':<58} {'':>16} {ms(sec['localize_pass_median'], digits=2):>18}",
              f"{'localization share of the run, measured (%)':<58} {'':>16} {ms(sec['localize_share'], True):>18}",
              (f"{'  steady state, without the one-off compiles (%)':<58} {'':>16} "
              f"{ms(sec['localize_share_steady'], True):>18}"),
              (f"data {sec['make_data']:.1f} s, conversion {sec['convert']:.1f} s, untrained-encoder k-NN and "
              f"consistency baselines {sec['baselines']:.1f} s")]
    d = result["dali"]
    if d is not None:
        ious = ", ".join(f"{v:.3f}" for v in d["iou_per_pass"].values())
        lines.append(f"DALI, ContrastiveCrop, seed {d['seed']}: box IoU per pass {ious}; view pairs "
                     f"{100 * d['consistency_localized']:.1f}%; k-NN {100 * d['knn_accuracy']:.1f}%; train "
                     f"{d['seconds']['train']:.1f} s, localize {d['seconds']['localize']:.1f} s")
    sweep = result.get("threshold_sweep", [])  # absent in records written before the sweep
    if sweep:
        lines.append("threshold sweep (ContrastiveCrop, first seed): k, box IoU and area after the last pass, boxes "
                     "moved off the full image, view pairs sharing the object, k-NN")
    for row in sweep:
        lines.append(f"  k {row['threshold']:.2f}: IoU {row['iou']:.3f}, area {row['area']:.3f}, located "
                     f"{100 * row['located']:.0f}%, view pairs {100 * row['consistency']:.1f}%, "
                     f"k-NN {100 * row['knn_accuracy']:.1f}%")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(dir=args.out) as work:
        result = bench(args, Path(work))
    result["seconds"]["total"] = time.perf_counter() - start
    (args.out / "method_bench.json").write_text(json.dumps(result, indent=1))
    print(table(result))
    print(f"total {result['seconds']['total']:.0f} s; wrote {args.out / 'method_bench.json'}")
    return result


if __name__ == "__main__":
    main()
