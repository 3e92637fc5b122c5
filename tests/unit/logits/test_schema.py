"""Logit export format: exact top-K, bounded tail error, KL within 1 %, byte-stable files, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from llmd4rec_core.distill.kl import tempered_kl
from llmd4rec_core.errors import InputError
from llmd4rec_core.logits.schema import LogitRows, compress, full_logits, read_logits, read_meta, write_logits

META = {"producer": "m", "round": 1, "split": "train", "params_sha256": "ab" * 32}


def make_rows(logits: torch.Tensor, top_k: int) -> LogitRows:
    n = logits.shape[0]
    return LogitRows(
        user_id=np.arange(n, 0, -1, dtype=np.int32),  # reversed: the writer sorts
        position=np.full(n, 3, np.int32),
        target=np.ones(n, np.int32),
        target_rank=np.arange(1, n + 1, dtype=np.int32),
        **compress(logits, top_k),
    )


def test_top_k_exact_ties_by_lower_id_and_tail_within_half_step() -> None:
    logits = torch.tensor([[1.0, 5.0, 5.0, -2.0, 0.5, 3.0]])
    c = compress(logits, 3)
    assert c["top_items"].tolist() == [[2, 3, 6]]  # the tie 5.0 / 5.0 keeps the lower id first
    assert c["top_logits"].tolist() == [[5.0, 5.0, 3.0]]
    rows = make_rows(logits, 3)
    rebuilt = full_logits(rows)
    assert rebuilt[0, [1, 2, 5]].tolist() == [5.0, 5.0, 3.0]
    step = float(rows.tail_step[0])
    assert step == pytest.approx((3.0 - -2.0) / 255)
    assert torch.all((rebuilt - logits).abs() <= step / 2 + 1e-6)


@pytest.mark.parametrize("temperature", [0.2, 0.6, 1.0])
def test_kl_from_file_within_one_percent(temperature: float) -> None:
    g = torch.Generator().manual_seed(0)
    teacher = torch.randn(64, 3000, generator=g) * 2.5  # flat-ish teacher: much tail mass at T = 1
    student = teacher + torch.randn(64, 3000, generator=g)
    exact = tempered_kl(teacher, student, temperature)
    from_file = tempered_kl(full_logits(make_rows(teacher, 20)), student, temperature)
    assert float((from_file.mean() - exact.mean()).abs() / exact.mean()) < 0.01
    assert float(((from_file - exact).abs() / exact).max()) < 0.01


def test_round_trip_sorted_and_byte_identical(tmp_path: Path) -> None:
    logits = torch.randn(10, 40, generator=torch.Generator().manual_seed(1))
    rows = make_rows(logits, 7)
    write_logits(tmp_path / "a.parquet", rows, META)
    write_logits(tmp_path / "b.parquet", rows, META)
    assert (tmp_path / "a.parquet").read_bytes() == (tmp_path / "b.parquet").read_bytes()
    back = read_logits(tmp_path / "a.parquet")
    assert back.meta["top_k"] == 7 and back.meta["num_items"] == 40 and back.meta["producer"] == "m"
    assert back.rows.user_id.tolist() == list(range(1, 11))
    order = np.argsort(rows.user_id)
    torch.testing.assert_close(full_logits(back.rows), full_logits(rows)[order])
    assert back.rows.target_rank.tolist() == rows.target_rank[order].tolist()
    # plain pyarrow / polars readers see the documented columns
    assert pq.read_schema(tmp_path / "a.parquet").names[:4] == [
        "user_id",
        "position",
        "target",
        "target_rank",
    ]


def test_non_finite_logits_are_refused() -> None:
    with pytest.raises(ValueError, match="NaN or infinite"):
        compress(torch.tensor([[0.0, float("nan")]]), 1)


def test_missing_empty_truncated_foreign_and_rowless_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="logits file not found"):
        read_logits(tmp_path / "none.parquet")
    (tmp_path / "empty.parquet").write_bytes(b"")
    with pytest.raises(InputError, match="logits file is empty"):
        read_logits(tmp_path / "empty.parquet")
    write_logits(tmp_path / "ok.parquet", make_rows(torch.randn(5, 9), 3), META)
    data = (tmp_path / "ok.parquet").read_bytes()
    (tmp_path / "cut.parquet").write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cut\.parquet: "):
        read_logits(tmp_path / "cut.parquet")
    pq.write_table(pa.table({"x": [1]}), tmp_path / "foreign.parquet")
    with pytest.raises(InputError, match="not an llmd4rec logits export"):
        read_meta(tmp_path / "foreign.parquet")
    empty_rows = make_rows(torch.randn(5, 9), 3).take(np.array([], dtype=np.int64))
    write_logits(tmp_path / "norows.parquet", empty_rows, META)
    with pytest.raises(InputError, match="has no rows"):
        read_logits(tmp_path / "norows.parquet")


def test_wrong_columns_or_version_are_named(tmp_path: Path) -> None:
    write_logits(tmp_path / "ok.parquet", make_rows(torch.randn(5, 9), 3), META)
    table = pq.read_table(tmp_path / "ok.parquet")
    meta = json.loads(table.schema.metadata[b"llmd4rec"])
    bad = table.replace_schema_metadata({b"llmd4rec": json.dumps(meta | {"top_k": 4}).encode()})
    pq.write_table(bad, tmp_path / "k.parquet")
    with pytest.raises(InputError, match="columns do not match"):
        read_logits(tmp_path / "k.parquet")
    old = table.replace_schema_metadata({b"llmd4rec": json.dumps(meta | {"schema_version": 0}).encode()})
    pq.write_table(old, tmp_path / "v.parquet")
    with pytest.raises(InputError, match="schema_version 0"):
        read_logits(tmp_path / "v.parquet")
