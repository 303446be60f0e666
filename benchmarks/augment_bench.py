"""SSL view augmentations on a batch: ours (``SSLViewAugment``) against kornia's, same recipe, same device.

Run: ``python -m benchmarks.augment_bench [--batch 64] [--size 224]`` (kornia optional:
``pip install kornia``; without it only ours is timed). Recipe: colour jitter
(0.4, 0.4, 0.4, 0.1) p 0.8, grayscale p 0.2, Gaussian blur (23, sigma 0.1-2) p 0.5.
"""
from __future__ import annotations

import argparse

import torch

from ccrop_loaders.trainer.augment import IMAGENET_MEAN, IMAGENET_STD, simclr_augment

from ccrop_loaders.tools.bench import best_times
from ccrop_loaders.tools.bench.report import print_rows


def kornia_recipe():
    import kornia.augmentation as K

    return torch.nn.Sequential(
        K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2),
        K.RandomGaussianBlur((23, 23), (0.1, 2.0), p=0.5),
        K.Normalize(torch.tensor(IMAGENET_MEAN), torch.tensor(IMAGENET_STD)))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--size", type=int, default=224)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    views = torch.randint(0, 256, (args.batch, args.size, args.size, 3), dtype=torch.uint8, device=device)
    ours = simclr_augment().to(device)
    contenders = {"ours": lambda: (ours(views), sync())}
    try:
        theirs = kornia_recipe().to(device)
        contenders["kornia"] = lambda: (theirs(views.permute(0, 3, 1, 2).float().div(255)), sync())
    except ImportError:
        pass
    best = best_times(contenders, rounds=args.rounds)
    rows = [(f"{name}, batch of {args.batch} {args.size}x{args.size}", f"{1e3 * t:.1f} ms", "")
            for name, t in best.items()]
    if "kornia" in best:
        rows.append(("ratio kornia / ours (time)", f"{best['kornia'] / best['ours']:.2f}", "> 1: ours is faster"))
    print_rows(f"SSL view augmentations on {device} ({torch.get_num_threads()} threads)", rows)


if __name__ == "__main__":
    main()
