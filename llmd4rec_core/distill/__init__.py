"""Distillation kernels shared by both directions of LLMD4Rec (and, later, the other strategies)."""
