"""Seeding and device choice shared by every training stage."""

from __future__ import annotations

import os
import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def pick_device() -> torch.device:
    """CUDA when present, else CPU (float32)."""
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def set_determinism(deterministic: bool) -> None:
    """``params.deterministic``: True makes torch use deterministic kernels only (an op that has none
    raises instead of running nondeterministically), with cuDNN autotuning off and a fixed cuBLAS
    workspace, so a rerun with the same params and seed is bit-identical on the same device type.
    False leaves torch's defaults (a little faster on GPU). CPU kernels are deterministic either way."""
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        torch.backends.cudnn.benchmark = False
    torch.use_deterministic_algorithms(deterministic)
    torch.backends.cudnn.deterministic = deterministic
