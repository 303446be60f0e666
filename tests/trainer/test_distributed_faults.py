"""One rank fails, the job ends: gloo ranks (plain processes, and torchrun) where one rank raises while localizing,
while training (the others in an all-reduce, as under DDP) or inside flush. The failing rank prints its own error
and exits non-zero, every other rank exits non-zero, all before the process group's timeout."""
import os
import shutil
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from .test_updater import free_port

PG_TIMEOUT_S = 30  # the job must end before it: a failing rank's peers notice it has gone, nobody waits it out
HARD_BOUND_S = PG_TIMEOUT_S + 60  # kills whatever is still running: a hang fails the test, it never blocks it

RANK_SCRIPT = textwrap.dedent("""
    import sys, time, torch, torch.distributed as dist
    from ccrop_loaders import BoxTable, BoxUpdater
    from ccrop_loaders.trainer import updater as updater_module
    from pipelines.train_ssl import setup_distributed

    where, failing, timeout_s = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
    setup_distributed(timeout_s)                  # the recipe's process group: env://, gloo on CPU
    rank, world = dist.get_rank(), dist.get_world_size()
    fails = rank == failing
    n = 8 * world
    with BoxTable.create(n) as table, BoxUpdater(table, threshold=0.2) as updater:
        if fails and where == "flush":            # this rank's background localization fails: flush raises
            def broken(*args, **kwargs):
                raise ValueError(f"rank {rank}: localization failed in the background")
            updater_module.localize_boxes = broken
        shard = torch.arange(rank, n, world)
        for step, part in enumerate(torch.split(shard, 4)):
            if fails and where == "localize" and step == 1:
                raise ValueError(f"rank {rank}: failed between updates")
            updater.update(torch.rand(len(part), 8, 7, 7), part)
        updater.flush()
        print(f"rank {rank}: flushed", flush=True)
        for step in range(3):                     # training: DDP's gradient all-reduce every step
            if fails and where == "train" and step == 1:
                time.sleep(0.5)                   # the other ranks are in the all-reduce by now
                raise ValueError(f"rank {rank}: failed during training")
            dist.all_reduce(torch.ones(4))
        print(f"rank {rank}: trained", flush=True)
""")

ERRORS = {
    "localize": "ValueError: rank {rank}: failed between updates",
    "train": "ValueError: rank {rank}: failed during training",
    "flush": "RuntimeError: the box updater's background thread failed: rank {rank}: localization failed in the "
             "background",
}
NOT_REACHED = {"localize": "flushed", "train": "trained", "flush": "flushed"}  # by any rank


def child_env(**extra) -> dict:
    env = {key: value for key, value in os.environ.items()
           if key not in ("MASTER_ADDR", "MASTER_PORT", "RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE")}
    # gloo on CPU (NCCL would want a GPU per rank); the repository root importable (pipelines, ccrop_loaders)
    return {**env, "CUDA_VISIBLE_DEVICES": "", "PYTHONPATH": os.getcwd(), **extra}


def finish(procs, started: float):
    """Wait for every process (killing what outlives the hard bound); (return codes, stdouts, stderrs, seconds)."""
    outputs = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=max(1.0, started + HARD_BOUND_S - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            out, err = proc.communicate()
        outputs.append((out, err))
    seconds = time.monotonic() - started
    return [p.returncode for p in procs], [o for o, _ in outputs], [e for _, e in outputs], seconds


CASES = [("localize", 2, 1), ("localize", 3, 0), ("train", 2, 0), ("train", 3, 2), ("flush", 2, 1), ("flush", 3, 1)]


@pytest.mark.parametrize("where, world, failing", CASES, ids=[f"{w}-{n}ranks-rank{f}" for w, n, f in CASES])
def test_a_failing_rank_ends_the_job(tmp_path, where, world, failing):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    port = free_port()
    started = time.monotonic()
    procs = [subprocess.Popen([sys.executable, str(script), where, str(failing), str(PG_TIMEOUT_S)],
                              env=child_env(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                                            WORLD_SIZE=str(world)),
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for rank in range(world)]
    codes, outs, errs, seconds = finish(procs, started)
    report = "\n".join(f"--- rank {r}: exit {c}\n{o}{e[-3000:]}" for r, (c, o, e) in enumerate(zip(codes, outs, errs)))
    assert seconds < PG_TIMEOUT_S, f"the job took {seconds:.1f} s (process group timeout {PG_TIMEOUT_S} s)\n{report}"
    assert all(code != 0 for code in codes), report
    own_error = ERRORS[where].format(rank=failing)
    last_line = [line for line in errs[failing].splitlines() if line.strip()][-1]
    assert own_error in last_line, report  # its own error, last: not replaced by a collective's failure
    assert all(NOT_REACHED[where] not in out for out in outs), report  # no collective completed without it


@pytest.mark.skipif(shutil.which("torchrun", path=str(Path(sys.executable).parent)) is None,
                    reason="torchrun is not installed beside this Python")
def test_torchrun_ends_the_job_when_rank_1_fails(tmp_path):
    script = tmp_path / "rank.py"
    script.write_text(RANK_SCRIPT)
    torchrun = shutil.which("torchrun", path=str(Path(sys.executable).parent))
    started = time.monotonic()
    proc = subprocess.Popen([torchrun, "--standalone", "--nproc_per_node=2", str(script), "localize", "1",
                             str(PG_TIMEOUT_S)], env=child_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    (code,), (out,), (err,), seconds = finish([proc], started)
    report = f"exit {code} after {seconds:.1f} s\n{out}{err[-5000:]}"
    assert seconds < PG_TIMEOUT_S, report
    assert code != 0, report
    assert ERRORS["localize"].format(rank=1) in err, report
    assert "flushed" not in out, report
