"""params.yaml schema: the repo's file validates; every bad value is a one-line InputError naming the dotted
key (or file and line for invalid YAML); ParamsView refuses undeclared keys."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from llmd4rec_core.errors import InputError
from llmd4rec_core.params import Params, ParamsView, SASRecParams, load_params, read_yaml

ROOT = Path(__file__).resolve().parents[2]
REPO_PARAMS = (ROOT / "params.yaml").read_text()


def edit(text: str, section: str, key: str, value: str | None) -> str:
    """Set ``key`` (one line, two-space indent) inside top-level ``section`` of the YAML text.

    ``value=None`` deletes the line; a key not present is appended as the section's first entry.
    Comments elsewhere are kept, so the result is the repo's file with one change.
    """
    lines = text.splitlines()
    start = lines.index(next(line for line in lines if re.match(rf"{re.escape(section)}:(\s|$)", line)))
    for i in range(start + 1, len(lines)):
        if lines[i] and not lines[i].startswith(" "):
            break  # next top-level section: key not found
        if re.match(rf"  {re.escape(key)}:", lines[i]):
            if value is None:
                del lines[i]
            else:
                lines[i] = f"  {key}: {value}"
            return "\n".join(lines) + "\n"
    assert value is not None, f"{section}.{key} not found"
    lines.insert(start + 1, f"  {key}: {value}")
    return "\n".join(lines) + "\n"


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "params.yaml"
    path.write_text(text)
    return path


def load_error(path: Path) -> str:
    with pytest.raises(InputError) as err:
        load_params(path)
    msg = str(err.value)
    assert "\n" not in msg  # one line
    assert msg.startswith(f"{path}")  # names the file
    return msg


# ---------------------------------------------------------------------------------------- valid files


def test_repo_params_validate() -> None:
    p = load_params(ROOT / "params.yaml")
    assert isinstance(p, Params)
    assert p.data.kcore == 5
    assert p.eval.ks == [5, 10, 20]
    assert p.eval.mask_history is True
    assert isinstance(p.sasrec.lr, float)
    assert p.sasrec.lr == 3e-3  # written `3.0e-3`: a float in YAML 1.2, as DVC reads it
    assert p.sasrec.hidden_size % p.sasrec.num_heads == 0
    assert p.sasrec.max_len == 50  # DESIGN.md section 3: d = 64, max length 50
    assert p.sasrec.hidden_size == 64


@pytest.mark.parametrize(
    ("section", "key", "text", "expected"),
    [
        ("sasrec", "lr", "1e-4", 1e-4),  # YAML 1.2 (like DVC): a float, not the string "1e-4"
        ("sasrec", "lr", "1.0e-4", 1e-4),
        ("sasrec", "lr", "3E-4", 3e-4),
        ("sasrec", "lr", ".5", 0.5),
        ("sasrec", "lr", "1", 1.0),  # an int where a float is expected is fine (no precision lost)
        ("gru4rec", "warmup_epochs", "2", 2.0),
        ("sasrec", "weight_decay", "0", 0.0),
    ],
)
def test_float_values_parse(tmp_path: Path, section: str, key: str, text: str, expected: float) -> None:
    p = load_params(write(tmp_path, edit(REPO_PARAMS, section, key, text)))
    value = getattr(getattr(p, section), key)
    assert isinstance(value, float)
    assert value == expected


def test_read_yaml_is_yaml_1_2(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("a: 1e-4\nb: yes\nc: 010\nd: null\n")
    # YAML 1.2: 1e-4 is a float; `yes` is a plain string (1.1 would say True); 010 is decimal 10
    assert read_yaml(path) == {"a": 1e-4, "b": "yes", "c": 10, "d": None}


@pytest.mark.parametrize(("dedup", "expected"), [("auto", "auto"), ("true", True), ("false", False)])
def test_dedup_values(tmp_path: Path, dedup: str, expected: object) -> None:
    p = load_params(write(tmp_path, edit(REPO_PARAMS, "data", "dedup", dedup)))
    assert p.data.dedup == expected


# ---------------------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        # unknown keys name the dotted key
        ("sasrec", "lrr", "0.1", "sasrec.lrr: unknown key"),
        ("eval", "k", "[10]", "eval.k: unknown key"),
        ("gru4rec", "num_heads", "2", "gru4rec.num_heads: unknown key"),
        # mistyped values
        ("sasrec", "lr", "abc", "sasrec.lr: "),
        ("sasrec", "batch_size", "12.5", "sasrec.batch_size: "),
        ("sasrec", "loss", "mse", "sasrec.loss: "),
        ("gru4rec", "max_len", "[50]", "gru4rec.max_len: "),
        ("eval", "mask_history", "maybe", "eval.mask_history: "),
        ("eval", "ks", "[5, ten]", "eval.ks.1: "),
        ("data", "dedup", "sometimes", "data.dedup"),
        # out of range
        ("data", "kcore", "0", "data.kcore: Input should be greater than 0"),
        ("data", "kcore", "-5", "data.kcore: Input should be greater than 0"),
        ("sasrec", "lr", "0", "sasrec.lr: Input should be greater than 0"),
        ("sasrec", "lr", "-1e-3", "sasrec.lr: Input should be greater than 0"),
        ("sasrec", "dropout", "1.0", "sasrec.dropout: Input should be less than 1"),
        ("gru4rec", "patience", "0", "gru4rec.patience: Input should be greater than 0"),
        ("sasrec", "warmup_epochs", "-1", "sasrec.warmup_epochs: Input should be greater than or equal to 0"),
        # cross-field rules
        ("sasrec", "num_heads", "3", "sasrec: Value error, hidden_size 64 is not divisible by num_heads 3"),
        ("eval", "ks", "[10, 5]", "eval: Value error, ks must be positive, unique and increasing"),
        ("eval", "ks", "[5, 5, 10]", "eval: Value error, ks must be positive, unique and increasing"),
        ("eval", "ks", "[0, 5]", "eval: Value error, ks must be positive, unique and increasing"),
        ("eval", "ks", "[]", "eval.ks: "),
        # missing key
        ("gru4rec", "patience", None, "gru4rec.patience: Field required"),
        ("data", "kcore", None, "data.kcore: Field required"),
    ],
)
def test_bad_values_name_the_key(
    tmp_path: Path, section: str, key: str, value: str | None, expected: str
) -> None:
    msg = load_error(write(tmp_path, edit(REPO_PARAMS, section, key, value)))
    assert expected in msg


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"),
    [
        # StrictModel's docstring: "silent type coercion [is an error]". Quoted numbers, booleans as
        # numbers and strings as booleans are typos in a params file, not values to convert.
        ("sasrec", "batch_size", '"128"', "sasrec.batch_size: "),
        ("sasrec", "batch_size", "true", "sasrec.batch_size: "),
        ("sasrec", "batch_size", "128.0", "sasrec.batch_size: "),
        ("sasrec", "lr", '"1e-3"', "sasrec.lr: "),
        ("eval", "mask_history", "yes", "eval.mask_history: "),  # YAML 1.2 string 'yes'
        ("eval", "mask_history", "1", "eval.mask_history: "),
        ("data", "dedup", "1", "data.dedup"),
        ("data", "kcore", '"5"', "data.kcore: "),
    ],
)
def test_no_silent_type_coercion(tmp_path: Path, section: str, key: str, value: str, expected: str) -> None:
    msg = load_error(write(tmp_path, edit(REPO_PARAMS, section, key, value)))
    assert expected in msg


def test_unknown_top_level_and_nested_keys(tmp_path: Path) -> None:
    assert "foo: unknown key" in load_error(write(tmp_path, REPO_PARAMS + "foo: 1\n"))
    nested = REPO_PARAMS.replace("    rating_col: rating", "    rating_col: rating\n    colour: red")
    assert "data.table.colour: unknown key" in load_error(write(tmp_path, nested))


@pytest.mark.parametrize("text", ["", "- 1\n- 2\n", "just a string\n"])
def test_not_a_mapping(tmp_path: Path, text: str) -> None:
    assert ": <root>: " in load_error(write(tmp_path, text))


# ------------------------------------------------------------------------------------- invalid YAML


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("seed: 0\ndata:\n  dataset: beauty\n  kcore: 5: 6\n", 4),  # mapping value inside a value
        ("seed: 0\nseed: 1\n", 2),  # duplicate key
        ("seed: 0\n\tdata: 1\n", 2),  # tab indentation
        ("seed: 0\ndata:\n  kcore: [5\n  dedup: auto\n", 4),  # unclosed flow sequence, noticed on line 4
    ],
)
def test_invalid_yaml_names_file_and_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    msg = load_error(path)
    assert msg.startswith(f"{path}:{line}: invalid YAML: ")


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="params file not found"):
        load_params(tmp_path / "nope.yaml")


def test_params_are_frozen() -> None:
    p = load_params(ROOT / "params.yaml")
    with pytest.raises(ValidationError):
        p.sasrec.lr = 0.5  # type: ignore[misc]


def test_sasrec_params_constructed_directly() -> None:
    kwargs: dict[str, object] = dict(
        loss="bce",
        num_negatives=1,
        lr=1e-3,
        weight_decay=0.0,
        batch_size=8,
        max_epochs=2,
        patience=1,
        warmup_epochs=0,
        hidden_size=8,
        max_len=5,
        num_layers=1,
        num_heads=2,
        dropout=0.0,
    )
    assert SASRecParams(**kwargs).warmup_epochs == 0.0  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SASRecParams(**kwargs, lrr=0.1)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------- ParamsView


@pytest.fixture(scope="module")
def params() -> Params:
    return load_params(ROOT / "params.yaml")


def test_view_allows_declared_keys_and_sub_keys(params: Params) -> None:
    view = ParamsView(params, {"seed", "sasrec", "eval.ks", "data.table.user_col"})
    assert view.seed == 0
    assert view.sasrec.lr == params.sasrec.lr  # a whole declared section: every sub-key
    assert view.sasrec is params.sasrec
    assert view.eval.ks == [5, 10, 20]  # a declared leaf inside an undeclared section
    assert view.data.table.user_col == "userId"  # three levels deep


@pytest.mark.parametrize(
    ("allowed", "chain", "refused"),
    [
        ({"seed", "sasrec", "eval.ks"}, ["eval", "batch_size"], "eval.batch_size"),
        ({"seed", "sasrec", "eval.ks"}, ["eval", "mask_history"], "eval.mask_history"),
        ({"seed", "sasrec", "eval.ks"}, ["gru4rec"], "gru4rec"),
        ({"seed", "sasrec", "eval.ks"}, ["data"], "data"),
        ({"sasrec"}, ["seed"], "seed"),
        ({"data.table.user_col"}, ["data", "table", "item_col"], "data.table.item_col"),
        ({"data.table.user_col"}, ["data", "dataset"], "data.dataset"),
        # dotted keys match whole components: declaring eval.k does not grant eval.ks
        ({"eval.k"}, ["eval", "ks"], "eval.ks"),
        ({"sasrec.lr"}, ["sasrec", "lr_schedule_missing_in_view"], None),
    ],
)
def test_view_refuses_undeclared_keys(
    params: Params, allowed: set[str], chain: list[str], refused: str | None
) -> None:
    obj: object = ParamsView(params, allowed)
    if refused is None:  # an attribute that does not exist at all is an AttributeError, as usual
        with pytest.raises(AttributeError):
            for name in chain:
                obj = getattr(obj, name)
        return
    with pytest.raises(KeyError, match=re.escape(repr(refused))):
        for name in chain:
            obj = getattr(obj, name)


def test_view_private_attributes_are_attribute_errors(params: Params) -> None:
    view = ParamsView(params, {"seed"})
    assert not hasattr(view, "_missing")
