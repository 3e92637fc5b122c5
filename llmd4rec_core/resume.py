"""Resumable training: atomic snapshots of everything the rest of a training run depends on.

A snapshot is a directory ``<root>/<label>/`` holding

- ``model.safetensors``: the trained weights now (for E4SRec only the trainable ones);
- ``best.safetensors``: the weights of the best validation epoch so far (may be empty);
- ``optimizer.safetensors`` + the optimizer's non-tensor state in ``state.json``;
- ``rng.safetensors``: torch generator states (global CPU and CUDA, plus named ``torch.Generator``s);
- ``state.json``: the loop position (epoch, batches of it already applied, the NumPy bit-generator state
  the epoch's batch order is drawn from), the epoch's running sums, the curve so far, the best epoch,
  the scheduler state and the NumPy generators' states;
- ``manifest.json``, written last: the SHA-256 of every other file, the format version and the
  *fingerprint* of the run it belongs to (params, input files and code; :func:`fingerprint`).

The directory is replaced atomically (``atomic.atomic_path``): a kill at any moment leaves the previous
complete snapshot or the new one. :meth:`Checkpointer.latest` ignores, with a one-line note on stderr, a
snapshot whose manifest is missing, whose files do not match their hashes, or whose fingerprint is
another run's: it is never resumed. Nothing is unpickled: tensors load through safetensors, the rest is
JSON. Resuming replays the interrupted epoch's batch order from its saved generator state and skips the
batches already applied, so an interrupted and resumed run ends with exactly the weights of an
uninterrupted one (on CPU; tests/unit/test_resume.py and tests/stages/test_kill_resume.py).
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from llmd4rec_core.atomic import atomic_path, json_text

FORMAT = 1
MANIFEST = "manifest.json"
FILES = ("model.safetensors", "best.safetensors", "optimizer.safetensors", "rng.safetensors", "state.json")


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(config: Mapping[str, Any], inputs: Iterable[str | Path]) -> str:
    """SHA-256 of ``config`` (canonical JSON) and of the content of every input file (directories walked
    in sorted order; a missing input counts as absent). Two runs resume each other's snapshots only if
    their fingerprints are equal, so a stage passes its params, its input data/models and its code."""
    digest = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    for root in sorted(str(p) for p in inputs):
        path = Path(root)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        for file in files:
            if "__pycache__" in file.parts:
                continue
            digest.update(f"\0{file}\0".encode())
            digest.update(_sha256_file(file).encode() if file.is_file() else b"absent")
    return digest.hexdigest()


@dataclass
class LoopState:
    """Where a training loop is: everything besides weights, optimizer and generators."""

    epoch: int = 1  # the epoch being (or about to be) trained, 1-based
    step_in_epoch: int = 0  # batches of ``epoch`` already applied
    global_step: int = 0  # optimizer steps since the start of the run
    batch_rng: dict[str, Any] | None = None  # NumPy bit-generator state ``epoch``'s batch order is drawn from
    sums: dict[str, float] = field(default_factory=dict)  # ``epoch``'s running loss sums
    seen: int = 0  # training rows of ``epoch`` already applied
    train_seconds: float = 0.0  # wall time already spent training ``epoch`` (not part of results)
    history: list[dict[str, float]] = field(default_factory=list)  # one row per finished epoch
    best_epoch: int = -1
    best_valid: dict[str, float] = field(default_factory=dict)
    bad_epochs: int = 0  # epochs since the best (early stopping)


@dataclass
class Snapshot:
    model: dict[str, torch.Tensor]  # weights now
    best: dict[str, torch.Tensor]  # weights of the best epoch so far
    optimizer: dict[str, Any]  # torch optimizer state_dict()
    scheduler: dict[str, Any]  # torch LR scheduler state_dict() (JSON-able for LambdaLR)
    torch_rng: dict[str, torch.Tensor]  # name -> generator state (uint8)
    numpy_rng: dict[str, dict[str, Any]]  # name -> bit_generator.state
    loop: LoopState


def _optimizer_split(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """An optimizer state_dict as safetensors-able tensors + JSON-able rest."""
    tensors: dict[str, torch.Tensor] = {}
    rest: dict[str, dict[str, Any]] = {}
    for pid, slots in state["state"].items():
        for name, value in slots.items():
            if isinstance(value, torch.Tensor):
                tensors[f"{pid}/{name}"] = value.detach().contiguous().cpu()
            else:
                rest.setdefault(str(pid), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": rest}


def _optimizer_join(tensors: dict[str, torch.Tensor], rest: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        pid, name = key.split("/", 1)
        state.setdefault(int(pid), {})[name] = value
    for pid, slots in rest["scalars"].items():
        state.setdefault(int(pid), {}).update(slots)
    return {"state": state, "param_groups": rest["param_groups"]}


def capture_rng(
    generators: Mapping[str, torch.Generator], numpy_generators: Mapping[str, np.random.Generator]
) -> tuple[dict[str, torch.Tensor], dict[str, dict[str, Any]]]:
    """The global torch CPU (and CUDA) states plus the named generators' states."""
    tensors = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        for i, state in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"cuda{i}"] = state
    tensors |= {f"gen/{name}": gen.get_state() for name, gen in generators.items()}
    return tensors, {name: copy.deepcopy(g.bit_generator.state) for name, g in numpy_generators.items()}


def restore_rng(
    snap: Snapshot,
    generators: Mapping[str, torch.Generator],
    numpy_generators: Mapping[str, np.random.Generator],
) -> None:
    """Put every generator back into the state :func:`capture_rng` recorded."""
    torch.set_rng_state(snap.torch_rng["torch"])
    if torch.cuda.is_available():
        cuda_keys = sorted((k for k in snap.torch_rng if k.startswith("cuda")), key=lambda k: int(k[4:]))
        cuda = [snap.torch_rng[k] for k in cuda_keys]
        if cuda:
            torch.cuda.set_rng_state_all(cuda)
    for name, gen in generators.items():
        gen.set_state(snap.torch_rng[f"gen/{name}"])
    for name, np_gen in numpy_generators.items():
        np_gen.bit_generator.state = snap.numpy_rng[name]


class SnapshotError(Exception):
    """A snapshot that cannot be resumed (incomplete, corrupt, or of another run)."""


class Checkpointer:
    """Periodic snapshots of one training run in ``root/label`` (``root`` None: disabled).

    ``every_steps`` > 0 also snapshots every that many optimizer steps inside an epoch; every finished
    epoch is snapshotted in any case. ``is_writer`` is False on the non-zero ranks of a multi-process
    run: they read snapshots but never write them.
    """

    def __init__(
        self,
        root: str | Path | None,
        label: str,
        run_fingerprint: str,
        every_steps: int = 0,
        is_writer: bool = True,
    ) -> None:
        self.directory = None if root is None else Path(root) / label
        self.label = label
        self.fingerprint = run_fingerprint
        self.every_steps = every_steps
        self.is_writer = is_writer
        self.resumed_from: int | None = None  # global step of the snapshot resumed, if any

    @classmethod
    def disabled(cls) -> Checkpointer:
        return cls(None, "", "")

    def due(self, global_step: int) -> bool:
        return self.directory is not None and self.every_steps > 0 and global_step % self.every_steps == 0

    def save(self, snap: Snapshot) -> None:
        """Write ``snap`` atomically; a failed write (disk full) is a one-line note, not a failed run."""
        if self.directory is None or not self.is_writer:
            return
        try:
            self._write(snap)
        except (OSError, SafetensorError) as exc:  # disk full, path blocked
            print(f"note: {self.directory}: snapshot not written ({exc})", file=sys.stderr)

    def _write(self, snap: Snapshot) -> None:
        assert self.directory is not None
        opt_tensors, opt_rest = _optimizer_split(snap.optimizer)
        loop = asdict(snap.loop)
        loop["history"] = [list(row.items()) for row in loop["history"]]  # pairs: JSON keeps column order
        state = {
            "loop": loop,
            "scheduler": snap.scheduler,
            "numpy_rng": snap.numpy_rng,
            "optimizer": opt_rest,
        }
        with atomic_path(self.directory) as tmp:
            tmp.mkdir()
            save_file({k: v.detach().contiguous().cpu() for k, v in snap.model.items()}, tmp / FILES[0])
            save_file({k: v.detach().contiguous().cpu() for k, v in snap.best.items()}, tmp / FILES[1])
            save_file(opt_tensors, tmp / FILES[2])
            save_file(snap.torch_rng, tmp / FILES[3])
            (tmp / FILES[4]).write_text(json_text(state))
            manifest = {
                "format": FORMAT,
                "fingerprint": self.fingerprint,
                "global_step": snap.loop.global_step,
                "files": {name: _sha256_file(tmp / name) for name in FILES},
            }
            (tmp / MANIFEST).write_text(json_text(manifest))

    def _read(self) -> Snapshot:
        assert self.directory is not None
        path = self.directory / MANIFEST
        try:
            manifest = json.loads(path.read_text())
            files, fmt, owner = manifest["files"], manifest["format"], manifest["fingerprint"]
        except FileNotFoundError:
            raise SnapshotError("incomplete (no manifest)") from None
        except (ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"unreadable manifest ({type(exc).__name__})") from None
        if fmt != FORMAT:
            raise SnapshotError(f"format {fmt}, this code reads {FORMAT}")
        if owner != self.fingerprint:
            raise SnapshotError("belongs to other params, inputs or code")
        for name in FILES:
            file = self.directory / name
            if not file.is_file() or files.get(name) != _sha256_file(file):
                raise SnapshotError(f"{name} is missing or does not match its hash")
        try:
            state = json.loads((self.directory / FILES[4]).read_text())
            tensors = [load_file(self.directory / name) for name in FILES[:4]]
            return Snapshot(
                model=tensors[0],
                best=tensors[1],
                optimizer=_optimizer_join(tensors[2], state["optimizer"]),
                scheduler=state["scheduler"],
                torch_rng=tensors[3],
                numpy_rng=state["numpy_rng"],
                loop=LoopState(**state["loop"] | {"history": [dict(r) for r in state["loop"]["history"]]}),
            )
        except (SafetensorError, ValueError, KeyError, TypeError) as exc:
            raise SnapshotError(f"unreadable ({type(exc).__name__}: {exc})") from None

    def _recover(self) -> None:
        """Clean up after a kill during a write: ``atomic_path`` renames the old snapshot aside into
        ``.<label>.*.tmp/previous`` just before renaming the new one in, so a kill between the two renames
        leaves only that; put it back. Then remove the temporaries of dead writes."""
        assert self.directory is not None
        stale = sorted(self.directory.parent.glob(f".{self.directory.name}.*.tmp"))
        if not self.directory.exists():
            for tmp in stale:
                if (tmp / "previous" / MANIFEST).is_file():
                    os.replace(tmp / "previous", self.directory)
                    break
        for tmp in stale:
            shutil.rmtree(tmp, ignore_errors=True)

    def latest(self) -> Snapshot | None:
        """The snapshot to resume, or None (no snapshot, or one that must not be resumed)."""
        if self.directory is None:
            return None
        if self.is_writer and self.directory.parent.is_dir():
            self._recover()
        if not self.directory.exists():
            return None
        try:
            snap = self._read()
        except SnapshotError as exc:
            print(f"note: {self.directory}: snapshot ignored, starting afresh: {exc}", file=sys.stderr)
            return None
        self.resumed_from = snap.loop.global_step
        print(
            f"note: {self.label}: resuming from {self.directory} (epoch {snap.loop.epoch}, "
            f"step {snap.loop.global_step})",
            file=sys.stderr,
        )
        return snap

    def finish(self) -> None:
        """Remove the run's snapshot once its outputs are written."""
        if self.directory is None or not self.is_writer or not self.directory.exists():
            return
        doomed = self.directory.with_name(f".{self.directory.name}.removed")
        shutil.rmtree(doomed, ignore_errors=True)
        os.replace(self.directory, doomed)  # rename aside first: never a half-deleted snapshot
        shutil.rmtree(doomed, ignore_errors=True)
