"""Hostile input for the CRM checkpoint loader (issue 6), as hypothesis properties.

A checkpoint written by ``save_checkpoint`` loads back bit-identically; a truncated or foreign
``model.safetensors``, a damaged safetensors header, or any garbage in ``config.json`` raises a one-line
:class:`InputError` naming the file, or loads a model that is exactly what the files describe.
"""

from __future__ import annotations

import json
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import torch
from hypothesis import example, given, settings
from safetensors.torch import load_file, save_file

from llmd4rec_core.checkpoint import CONFIG, WEIGHTS, load_checkpoint, save_checkpoint
from llmd4rec_core.errors import InputError
from llmd4rec_core.models import GRU4Rec, GRU4RecConfig, SASRec, SASRecConfig
from llmd4rec_core.models.base import SequentialRecommender

SETTINGS = settings(max_examples=50, deadline=None)
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=8,
)


@contextmanager
def scratch() -> Iterator[Path]:
    """A fresh directory per hypothesis example."""
    with tempfile.TemporaryDirectory() as tmp:
        yield Path(tmp)


@st.composite
def models(draw: st.DrawFn) -> tuple[str, SequentialRecommender]:
    """A tiny SASRec or GRU4Rec with random sizes and randomised weights."""
    torch.manual_seed(draw(st.integers(0, 2**32 - 1)))
    num_items, max_len, layers = draw(st.integers(1, 9)), draw(st.integers(1, 5)), draw(st.integers(1, 2))
    dropout = draw(st.sampled_from([0.0, 0.2, 0.5]))
    if draw(st.booleans()):
        heads = draw(st.integers(1, 2))
        hidden = heads * draw(st.integers(1, 4))
        model: SequentialRecommender = SASRec(
            SASRecConfig(num_items, hidden, max_len, layers, heads, dropout)
        )
        arch = "sasrec"
    else:
        model = GRU4Rec(GRU4RecConfig(num_items, draw(st.integers(1, 6)), max_len, layers, dropout))
        arch = "gru4rec"
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return arch, model


def same_weights(a: SequentialRecommender, b: SequentialRecommender) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(
        sa[k].dtype == sb[k].dtype and torch.equal(sa[k], sb[k]) for k in sa
    )


def outcome(ckpt: Path, num_items: int | None = None) -> tuple[SequentialRecommender, dict[str, Any]] | str:
    """The loaded checkpoint, or the InputError message (one line, naming one of the two files)."""
    try:
        return load_checkpoint(ckpt, num_items)
    except InputError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith((f"{ckpt / CONFIG}:", f"{ckpt / WEIGHTS}:")), message
        return message


@SETTINGS
@given(models())
def test_round_trip_is_bit_identical(drawn: tuple[str, SequentialRecommender]) -> None:
    arch, model = drawn
    with scratch() as tmp:
        save_checkpoint(tmp / "ck", arch, model, {"seed": 1})
        got = outcome(tmp / "ck", model.cfg.num_items)
        assert not isinstance(got, str), got
        assert type(got[0]) is type(model) and got[0].cfg == model.cfg and same_weights(got[0], model)


@SETTINGS
@given(models(), st.data())
def test_damaged_weights_are_refused(drawn: tuple[str, SequentialRecommender], draw: st.DataObject) -> None:
    """``model.safetensors`` truncated anywhere, replaced by foreign bytes, or with bytes flipped inside
    its JSON header: InputError naming it (or, for a harmless header flip, the same weights).

    Flips in the tensor data are not covered: safetensors stores no checksum, so they load silently.
    """
    arch, model = drawn
    with scratch() as tmp:
        ckpt = tmp / "ck"
        save_checkpoint(ckpt, arch, model, {})
        raw = (ckpt / WEIGHTS).read_bytes()
        header_end = 8 + int.from_bytes(raw[:8], "little")
        kind = draw.draw(st.sampled_from(["truncate", "foreign", "header flip"]))
        if kind == "truncate":
            (ckpt / WEIGHTS).write_bytes(raw[: draw.draw(st.integers(0, len(raw) - 1))])
        elif kind == "foreign":
            (ckpt / WEIGHTS).write_bytes(draw.draw(st.binary(max_size=len(raw) + 64)))
        else:
            buffer = bytearray(raw)
            for _ in range(draw.draw(st.integers(1, 3))):
                buffer[draw.draw(st.integers(0, header_end - 1))] ^= draw.draw(st.integers(1, 255))
            (ckpt / WEIGHTS).write_bytes(bytes(buffer))
        got = outcome(ckpt)
        if isinstance(got, str):
            assert got.startswith(f"{ckpt / WEIGHTS}:"), got
        else:
            assert kind == "header flip" and same_weights(got[0], model), kind


def mutate_config(draw: st.DrawFn, meta: dict[str, Any]) -> dict[str, Any] | Any:
    """``meta`` with one hostile edit: a field set to any JSON value, a key dropped or added, or the
    whole document replaced by another JSON value."""
    kind = draw(st.sampled_from(["field", "drop", "add", "replace", "top"]))
    config = dict(meta["config"])
    if kind == "field":
        key = draw(st.sampled_from(sorted(config)))
        value = draw(JSON | st.sampled_from([0, -1, 2**40, 10**6, True, 1.5, "8", 0.99, 1.0, float("nan")]))
        return meta | {"config": config | {key: value}}
    if kind == "drop":
        config.pop(draw(st.sampled_from(sorted(config))))
        return meta | {"config": config}
    if kind == "add":
        return meta | {"config": config | {draw(st.text(max_size=5)): draw(JSON)}}
    if kind == "replace":
        return meta | {draw(st.sampled_from(["arch", "config"])): draw(JSON)}
    return draw(JSON)


@settings(max_examples=100, deadline=None)
@given(models(), st.data())
def test_garbage_config_is_refused_or_exact(
    drawn: tuple[str, SequentialRecommender], draw: st.DataObject
) -> None:
    """Any edit of config.json: InputError naming config.json or the weights, or the model the edited
    config describes carrying exactly the saved weights (e.g. another dropout, an extra key)."""
    arch, model = drawn
    with scratch() as tmp:
        ckpt = tmp / "ck"
        save_checkpoint(ckpt, arch, model, {})
        meta = json.loads((ckpt / CONFIG).read_text())
        edited = mutate_config(draw.draw, meta)
        (ckpt / CONFIG).write_text(json.dumps(edited))
        started = time.perf_counter()
        got = outcome(ckpt)
        assert time.perf_counter() - started < 5  # a huge hidden_size must not allocate first
        if not isinstance(got, str):
            loaded, loaded_meta = got
            assert loaded_meta == json.loads(json.dumps(edited))
            assert loaded.cfg.to_dict() == edited["config"] and same_weights(loaded, model)


@SETTINGS
@given(st.binary(max_size=64) | JSON.map(lambda v: json.dumps(v).encode()))
@example(b"\xff\xfe{}")
@example(b"[" * 100_000)  # deep nesting: RecursionError inside json
@example(b'{"arch": ["sasrec"], "config": {}}')  # unhashable arch: used to be a TypeError
def test_random_config_bytes_are_refused(payload: bytes) -> None:
    with scratch() as tmp:
        ckpt = tmp / "ck"
        save_checkpoint(ckpt, "gru4rec", GRU4Rec(GRU4RecConfig(4, 3, 2, 1, 0.0)), {})
        (ckpt / CONFIG).write_bytes(payload)
        got = outcome(ckpt)
        assert isinstance(got, str) and got.startswith(f"{ckpt / CONFIG}:"), got


def test_allocation_bomb_and_wrong_dtypes_are_refused() -> None:
    """A config far larger than its weights is refused before allocating; float64 or integer weights
    (which load_state_dict would silently cast) are refused too."""
    with scratch() as tmp:
        ckpt = tmp / "ck"
        model = SASRec(SASRecConfig(5, 4, 3, 1, 2, 0.0))
        save_checkpoint(ckpt, "sasrec", model, {})
        meta = json.loads((ckpt / CONFIG).read_text())
        (ckpt / CONFIG).write_text(json.dumps(meta | {"config": meta["config"] | {"hidden_size": 2**20}}))
        started = time.perf_counter()
        assert "too small" in str(outcome(ckpt))
        assert time.perf_counter() - started < 2
        (ckpt / CONFIG).write_text(json.dumps(meta))
        state = load_file(ckpt / WEIGHTS)
        for dtype in (torch.float64, torch.int32):
            save_file({k: v.to(dtype) for k, v in state.items()}, ckpt / WEIGHTS)
            assert f"is {dtype}" in str(outcome(ckpt))
