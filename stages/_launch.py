"""``distributed.nproc`` > 1: the LLM stages re-launch themselves under ``torchrun`` (one process per
device), so ``dvc repro`` needs no other command line. Inside torchrun (WORLD_SIZE set) nothing happens."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from llmd4rec_core.errors import InputError


def relaunch_under_torchrun(nproc: int, module: str) -> None:
    """Run this same stage command as ``torchrun --standalone --nproc-per-node nproc`` and exit: 0, or 2
    with a one-line error if a worker failed (no-op for ``nproc`` 1 or inside a torchrun worker)."""
    if nproc <= 1 or "WORLD_SIZE" in os.environ:
        return
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    if spec is not None and spec.name == module:  # python -m stages.<stage> ...
        program = ["-m", module, *sys.argv[1:]]
    elif Path(sys.argv[0]).name == "llmd4rec":  # the console script: llmd4rec <subcommand> ...
        program = sys.argv[:]
    else:
        raise InputError(
            f"distributed.nproc: {nproc} processes need `python -m {module}` or `llmd4rec` "
            f"(or start it yourself: torchrun --nproc-per-node {nproc} -m {module} ...)"
        )
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}"]
    sys.stdout.flush()
    status = subprocess.call([*torchrun, *program])
    if status != 0:  # the failing worker printed its own one-line `error:` above torchrun's report
        print(
            f"error: {module}: a torchrun worker failed (exit {status}); see its error line above",
            file=sys.stderr,
        )
        raise SystemExit(2)
    raise SystemExit(0)  # the workers did the stage's work
