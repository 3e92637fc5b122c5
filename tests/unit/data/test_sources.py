"""Dataset registry, lookup order (data/raw, mirror, download), SHA-256 checks."""

from __future__ import annotations

import hashlib
import io
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from llmd4rec_core.data import sources
from llmd4rec_core.data.sources import RawFile, get_dataset, locate, locate_side_file, sha256_file
from llmd4rec_core.errors import InputError
from llmd4rec_core.params import DataParams, TableParams

CONTENT = b"1 1 2 3\n2 1 2 3\n"
SHA = hashlib.sha256(CONTENT).hexdigest()


def data_params(dataset: str, path: str | None = None, sha256: str | None = None) -> DataParams:
    table = TableParams(path=path, sha256=sha256, user_col="u", item_col="i", time_col="t", rating_col=None)
    return DataParams(dataset=dataset, kcore=5, dedup="auto", table=table)


@pytest.fixture(autouse=True)
def no_mirror(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(sources.MIRROR_ENV, raising=False)


def write(path: Path, content: bytes = CONTENT) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


# --------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize(
    ("name", "file_name", "sha_prefix"),
    [
        ("beauty", "Beauty.txt", "226cce9c"),
        ("sports", "Sports_and_Outdoors.txt", "2a095e06"),
        ("toys", "Toys_and_Games.txt", "176c680c"),
        ("yelp", "Yelp.txt", "724b2191"),
        ("lastfm", "LastFM.txt", "9ded486a"),
    ],
)
def test_s3rec_registry(name: str, file_name: str, sha_prefix: str) -> None:
    ds = get_dataset(data_params(name))
    assert (ds.kind, ds.file.rel_path) == ("s3rec", file_name)
    assert ds.file.sha256 is not None and ds.file.sha256.startswith(sha_prefix) and len(ds.file.sha256) == 64
    assert ds.file.url == f"https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/{file_name}"


def test_movielens_and_side_file_registry() -> None:
    ds = get_dataset(data_params("ml-latest-small"))
    assert ds.kind == "table" and ds.file.rel_path == "raw/ml-latest-small/ratings.csv"
    assert ds.file.sha256 == "821795331fd974bbe7a8416f2a7eec2b548a485dedb47a073580b0a9a8a0a8d2"
    assert ds.file.url == "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip"
    assert ds.file.zip_member == "ml-latest-small/ratings.csv"
    titles = sources.SIDE_FILES["beauty_titles"]
    assert titles.rel_path == "titles/s3rec_Beauty_id2asin_title.tsv" and titles.url is None
    assert titles.sha256 == "840d505418f158a930bf3c5570152f00481d5161a9aabe34d175e9dbe78c8f4e"


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(InputError, match="unknown dataset 'amazon'") as err:
        get_dataset(data_params("amazon"))
    for name in ("beauty", "sports", "toys", "yelp", "lastfm", "ml-latest-small", "table"):
        assert name in str(err.value)


def test_table_dataset_uses_table_path_and_sha() -> None:
    ds = get_dataset(data_params("table", "mine/x.csv", SHA))
    assert (ds.name, ds.kind, ds.file) == ("table", "table", RawFile("mine/x.csv", SHA))
    with pytest.raises(InputError, match=r"data\.table\.path"):
        get_dataset(data_params("table"))


def test_sha256_file_streams_large_files(tmp_path: Path) -> None:
    blob = bytes(range(256)) * 9000  # > 2 MiB: several chunks
    assert sha256_file(write(tmp_path / "big", blob)) == hashlib.sha256(blob).hexdigest()


# --------------------------------------------------------------------------------------------- lookup


def test_raw_dir_first(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    raw = write(tmp_path / "raw" / "x.txt")
    write(tmp_path / "mirror" / "x.txt")
    monkeypatch.setenv(sources.MIRROR_ENV, str(tmp_path / "mirror"))
    assert locate(RawFile("x.txt", SHA), tmp_path / "raw") == (raw, SHA)


def test_raw_dir_wins_even_when_its_hash_is_wrong(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "raw" / "x.txt", b"corrupt")
    write(tmp_path / "mirror" / "x.txt")
    monkeypatch.setenv(sources.MIRROR_ENV, str(tmp_path / "mirror"))
    with pytest.raises(InputError, match="SHA-256 mismatch"):
        locate(RawFile("x.txt", SHA), tmp_path / "raw")


def test_mirror_from_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    mirrored = write(tmp_path / "mirror" / "raw" / "ml" / "r.csv")
    monkeypatch.setenv(sources.MIRROR_ENV, str(tmp_path / "mirror"))
    assert locate(RawFile("raw/ml/r.csv", SHA), tmp_path / "raw") == (mirrored, SHA)
    assert not (tmp_path / "raw").exists()  # the mirror is used in place, never copied


def test_checksum_mismatch_names_file_and_hashes(tmp_path: Path) -> None:
    write(tmp_path / "x.txt", b"other")
    actual = hashlib.sha256(b"other").hexdigest()
    with pytest.raises(InputError) as err:
        locate(RawFile("x.txt", SHA), tmp_path)
    msg = str(err.value)
    assert "x.txt" in msg and SHA in msg and actual in msg and "\n" not in msg


def test_no_checksum_when_none(tmp_path: Path) -> None:
    path = write(tmp_path / "x.txt", b"anything")
    assert locate(RawFile("x.txt", None), tmp_path) == (path, hashlib.sha256(b"anything").hexdigest())


def test_missing_without_url(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"not found .*LLMD4REC_DATA_MIRROR is not set.*no download URL"):
        locate(RawFile("x.txt", SHA), tmp_path)


def test_absolute_table_path_needs_its_hash(tmp_path: Path) -> None:
    path = write(tmp_path / "abs.csv")
    assert locate(RawFile(str(path), SHA), tmp_path / "raw")[0] == path
    with pytest.raises(InputError, match=r"data.table.sha256: required for .*abs.csv, which lies outside"):
        locate(RawFile(str(path), None), tmp_path / "raw")  # DVC tracks data/raw/ only


def test_unhashed_table_only_from_raw_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "mirror" / "t.csv")
    monkeypatch.setenv("LLMD4REC_DATA_MIRROR", str(tmp_path / "mirror"))
    with pytest.raises(InputError, match=r"data\.table\.sha256: required"):
        locate(RawFile("t.csv", None), tmp_path / "raw")
    write(tmp_path / "raw" / "t.csv")
    assert locate(RawFile("t.csv", None), tmp_path / "raw")[0] == tmp_path / "raw" / "t.csv"


# --------------------------------------------------------------------------------------------- download


def test_download_file_url(tmp_path: Path) -> None:
    src = write(tmp_path / "remote" / "x.txt")
    raw = RawFile("sub/x.txt", SHA, src.as_uri())
    path, digest = locate(raw, tmp_path / "raw")
    assert path == tmp_path / "raw" / "sub" / "x.txt" and path.read_bytes() == CONTENT and digest == SHA
    assert sorted(p.name for p in path.parent.iterdir()) == ["x.txt"]  # no temp files left


def test_download_zip_member_with_injected_opener(tmp_path: Path) -> None:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("pkg/README.txt", "hello")
        zf.writestr("pkg/data.csv", CONTENT)
    urls: list[str] = []

    def opener(url: str) -> io.BytesIO:
        urls.append(url)
        return io.BytesIO(buf.getvalue())

    raw = RawFile("d.csv", SHA, "https://example.invalid/pkg.zip", zip_member="pkg/data.csv")
    path, _ = locate(raw, tmp_path, opener=opener)
    assert urls == ["https://example.invalid/pkg.zip"] and path.read_bytes() == CONTENT
    missing = RawFile("e.csv", SHA, "https://example.invalid/pkg.zip", zip_member="pkg/nope.csv")
    with pytest.raises(InputError, match=r"no member pkg/nope\.csv"):
        locate(missing, tmp_path, opener=opener)


def test_download_checksum_mismatch_leaves_nothing(tmp_path: Path) -> None:
    src = write(tmp_path / "remote" / "x.txt", b"newer release")
    with pytest.raises(InputError, match=r"x\.txt \(downloaded from file:.*SHA-256 mismatch"):
        locate(RawFile("x.txt", SHA, src.as_uri()), tmp_path / "raw")
    assert list((tmp_path / "raw").iterdir()) == []


def test_download_failure_is_one_line(tmp_path: Path) -> None:
    url = (tmp_path / "absent.txt").as_uri()
    with pytest.raises(InputError, match="cannot download") as err:
        locate(RawFile("x.txt", SHA, url), tmp_path / "raw")
    assert "\n" not in str(err.value)
    assert list((tmp_path / "raw").iterdir()) == []


def test_side_file(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="unknown side file 'nope'"):
        locate_side_file("nope", tmp_path)
    with pytest.raises(InputError, match="no download URL"):
        locate_side_file("beauty_titles", tmp_path)


@pytest.mark.needs_data
def test_side_file_in_mirror(mirror_file: Callable[[str], Path], monkeypatch: pytest.MonkeyPatch) -> None:
    path = mirror_file("titles/s3rec_Beauty_id2asin_title.tsv")
    monkeypatch.setenv(sources.MIRROR_ENV, str(path.parents[1]))
    assert locate_side_file("beauty_titles", path.parent / "no-raw-dir") == path
