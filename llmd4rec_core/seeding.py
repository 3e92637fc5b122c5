"""Seeding and device choice shared by every training stage."""

from __future__ import annotations

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
