"""Bytes read from a .beton per epoch and resident memory, ``os_cache=False``: DistributedQuasiRandom against
FFCV's RANDOM, side by side in one run: ``python -m benchmarks.order_bench [--samples N] [--ranks R]``.

FFCV's process cache reads each page a process needs once per epoch and keeps it from the first batch needing it
to the last, so the order decides two things: how many pages each rank reads (RANDOM with ``distributed=True``
interleaves the samples, so every rank reads nearly every page) and how many stay in memory at once. Each
contender runs in its own processes (their own RSS and /proc/self/io counters), ``--ranks`` gloo ranks for the
distributed ones.
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from ccrop_loaders.tools.bench.report import print_rows

_RUN = """
import json, resource, sys
import numpy as np
from ffcv.fields.decoders import IntDecoder, NDArrayDecoder
from ffcv.loader import Loader, OrderOption
from ccrop_loaders.ffcv.order import DistributedQuasiRandom

beton, kind, rank, world, batch, buffer, port = sys.argv[1], sys.argv[2], *map(int, sys.argv[3:8])
if world > 1:
    import torch.distributed as dist
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world)
order = OrderOption.RANDOM if kind == "random" else DistributedQuasiRandom(buffer_pages=buffer or None)
loader = Loader(beton, batch_size=batch, num_workers=1, order=order, os_cache=False, seed=1, drop_last=False,
                distributed=world > 1, pipelines={"data": [NDArrayDecoder()], "idx": [IntDecoder()]})
def rchar():
    return int(next(l for l in open("/proc/self/io") if l.startswith("rchar")).split()[1])
for _ in loader:  # the first epoch compiles
    pass
before = rchar()
samples = sum(len(idx) for _, idx in loader)
print(json.dumps({"bytes": rchar() - before, "samples": samples,
                  "rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _write(path: Path, samples: int, sample_bytes: int) -> None:
    import numpy as np
    from ffcv.fields import IntField, NDArrayField
    from ffcv.writer import DatasetWriter

    class Arrays:
        def __len__(self):
            return samples

        def __getitem__(self, i):
            return np.random.default_rng(i).integers(0, 255, sample_bytes, dtype=np.uint8), i

    DatasetWriter(str(path), {"data": NDArrayField(np.dtype("u1"), (sample_bytes,)), "idx": IntField()},
                  page_size=1 << 22, num_workers=2).from_indexed_dataset(Arrays())


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=4000)
    parser.add_argument("--sample-bytes", type=int, default=100_000)
    parser.add_argument("--ranks", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--small-buffer", type=int, default=4, help="pages mixed at a time in the last contender")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        beton = Path(tmp) / "data.beton"
        _write(beton, args.samples, args.sample_bytes)
        size = beton.stat().st_size

        def run(kind: str, world: int = 1, buffer: int = 0) -> list[dict]:
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                port = s.getsockname()[1]
            procs = [subprocess.Popen([sys.executable, "-c", _RUN, str(beton), kind, str(r), str(world),
                                       str(args.batch_size), str(buffer), str(port)], stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, text=True) for r in range(world)]
            outs = [p.communicate(timeout=1800)[0] for p in procs]
            if any(p.returncode for p in procs):
                raise SystemExit(f"order_bench: a {kind} rank failed")
            return [json.loads(out.strip().splitlines()[-1]) for out in outs]

        contenders = [("RANDOM, 1 process", run("random")), ("DistributedQuasiRandom, 1 process", run("quasi")),
                      (f"RANDOM distributed, {args.ranks} ranks", run("random", args.ranks)),
                      (f"DistributedQuasiRandom, {args.ranks} ranks", run("quasi", args.ranks)),
                      (f"DistributedQuasiRandom, {args.ranks} ranks, buffer {args.small_buffer} pages",
                       run("quasi", args.ranks, args.small_buffer))]
    mib = 2**20
    rows = [("file size", f"{size / mib:.0f} MiB", f"{-(-size // (1 << 22))} pages of 4 MiB")]
    for name, ranks in contenders:
        read = sum(r["bytes"] for r in ranks)
        rows.append((f"{name}: read per epoch, all ranks", f"{read / mib:.0f} MiB", f"{read / size:.2f} x the file"))
        rows.append((f"{name}: peak RSS of a rank", f"{max(r['rss_mib'] for r in ranks):.0f} MiB", ""))
    print_rows(f"FFCV os_cache=False, {args.samples} samples of {args.sample_bytes} bytes, batch {args.batch_size}",
               rows)


if __name__ == "__main__":
    main()
