"""``python -m pipelines.train_ssl`` with test hooks, for the resume and restart tests (run under torchrun or not).

HOOK_COPY_AT=K: rank 0 copies the checkpoint it saved for epoch K to ``CHECKPOINT.atK``.
HOOK_KILL_AT=K: on the first launch (TORCHELASTIC_RESTART_COUNT 0), rank 1 SIGKILLs itself once rank 0 has saved
epoch K (right after that epoch's gather of the per-rank states).
"""
import os
import shutil
import signal
import sys
import time

import torch.distributed as dist

import pipelines.train_ssl as recipe

copy_at, kill_at = int(os.environ.get("HOOK_COPY_AT", "-1")), int(os.environ.get("HOOK_KILL_AT", "-1"))
save_run, gather = recipe.save_run, recipe.gather_rank_states
gathered = [0]


def hooked_save(path, state):
    save_run(path, state)
    if state["epoch"] == copy_at:
        shutil.copyfile(path, f"{path}.at{copy_at}")


def hooked_gather(mine):
    out = gather(mine)
    gathered[0] += 1
    first_launch = os.environ.get("TORCHELASTIC_RESTART_COUNT", "0") == "0"
    if first_launch and dist.is_initialized() and dist.get_rank() == 1 and gathered[0] == kill_at:
        time.sleep(5)  # rank 0 saves meanwhile
        os.kill(os.getpid(), signal.SIGKILL)
    return out


recipe.save_run, recipe.gather_rank_states = hooked_save, hooked_gather
recipe.main(sys.argv[1:])
