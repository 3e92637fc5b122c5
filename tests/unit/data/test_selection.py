"""data/selection.py: which training instances an export scores (all, or ALKDRec's drawn subset)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.selection import apply_selection, read_selection, selection_record, write_selection
from llmd4rec_core.errors import InputError
from tests.unit.test_training import successor_data


def pool():  # type: ignore[no-untyped-def]
    return split_instances(successor_data(), "train", 2)


def test_round_trip_keeps_the_draw_order(tmp_path: Path) -> None:
    instances = pool()
    drawn = np.array([7, 2, 11])
    path = tmp_path / "s.json"
    write_selection(path, selection_record("alkdrec", instances, drawn, {"note": 1}))
    record = read_selection(path)
    chosen = apply_selection(path, record, instances)
    assert chosen.user_id.tolist() == instances.user_id[drawn].tolist()
    assert chosen.position.tolist() == instances.position[drawn].tolist()
    assert [h.tolist() for h in chosen.histories] == [instances.histories[i].tolist() for i in drawn]


def test_all_selects_the_whole_pool_and_its_bytes_do_not_depend_on_details(tmp_path: Path) -> None:
    instances = pool()
    path = tmp_path / "s.json"
    write_selection(path, selection_record("all", instances, None, {}))
    assert apply_selection(path, read_selection(path), instances) is instances
    first = path.read_bytes()
    write_selection(path, selection_record("all", instances, None, {}))
    assert path.read_bytes() == first


@pytest.mark.parametrize(
    ("record", "match"),
    [
        ({"version": 2}, "version: expected 1"),
        ({"method": "some"}, "method: expected 'all' or 'alkdrec'"),
        ({"pool": -1}, "pool: expected a non-negative integer"),
        ({"instances": {"a": 1}}, "instances: expected null or a list"),
        ({"instances": [[1, 2], [3]]}, r"instances\[1\]: expected \[user_id, position\]"),
        ({"instances": [[1, True]]}, r"instances\[0\]"),
    ],
)
def test_bad_files_name_the_field(tmp_path: Path, record: dict[str, object], match: str) -> None:
    good = {"version": 1, "method": "alkdrec", "pool": 3, "instances": [[1, 2]], "details": {}}
    path = tmp_path / "s.json"
    path.write_text(json.dumps(good | record))
    with pytest.raises(InputError, match=f"s.json: {match}"):
        read_selection(path)


def test_unreadable_or_missing_files(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="selection file not found"):
        read_selection(tmp_path / "none.json")
    (tmp_path / "s.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        read_selection(tmp_path / "s.json")


def test_a_selection_for_another_pool_is_refused(tmp_path: Path) -> None:
    instances = pool()
    path = tmp_path / "s.json"
    record = selection_record("alkdrec", instances, np.array([0, 1]), {})
    with pytest.raises(InputError, match="rerun select_instances"):
        apply_selection(path, record | {"pool": len(instances) + 1}, instances)
    with pytest.raises(InputError, match=r"instances\[1\]: \(user_id 999, position 3\) is not in"):
        apply_selection(path, record | {"instances": [record["instances"][0], [999, 3]]}, instances)
    with pytest.raises(InputError, match="listed twice"):
        apply_selection(path, record | {"instances": [record["instances"][0]] * 2}, instances)
