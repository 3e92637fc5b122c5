"""Dataset registry and acquisition of raw files (lookup, download, SHA-256 check).

Every raw file has a path ``R`` relative to the data root (e.g. ``Beauty.txt``,
``raw/ml-latest-small/ratings.csv``). :func:`locate` looks for it, in order, at

1. ``<raw_dir>/R`` (``data/raw/R`` for the stage),
2. ``$LLMD4REC_DATA_MIRROR/R`` (a read-only mirror with exactly this layout, e.g. the CI's shared data),
3. its canonical URL: downloaded to a temporary file next to ``<raw_dir>/R`` (the zip member extracted
   when the URL is a zip), checked, then renamed into place.

The SHA-256 is checked in every case (streamed in 1 MiB chunks); a mismatch is an :class:`InputError`
naming the file and both hashes, and a failed download leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import tempfile
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Literal

from llmd4rec_core.errors import InputError
from llmd4rec_core.params import DataParams

MIRROR_ENV = "LLMD4REC_DATA_MIRROR"
DEFAULT_RAW_DIR = Path("data/raw")
CHUNK = 1 << 20  # 1 MiB
TABLE = "table"  # the ``data.dataset`` value for a user-supplied interaction table

S3REC_URL = "https://raw.githubusercontent.com/RUCAIBox/CIKM2020-S3Rec/master/data/{}"

Kind = Literal["s3rec", "table"]
Opener = Callable[[str], IO[bytes]]


@dataclass(frozen=True)
class RawFile:
    """A raw input file: path relative to the data root, expected SHA-256 and where to download it."""

    rel_path: str
    sha256: str | None  # None: not checked (only for user tables without ``table.sha256``)
    url: str | None = None  # None: no known download source
    zip_member: str | None = None  # member to extract when ``url`` is a zip archive


@dataclass(frozen=True)
class Dataset:
    """A named dataset: its raw file and how to parse it (S3-Rec sequence text or interaction table)."""

    name: str
    kind: Kind
    file: RawFile


def _s3rec(name: str, file_name: str, sha256: str) -> Dataset:
    return Dataset(name, "s3rec", RawFile(file_name, sha256, S3REC_URL.format(file_name)))


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        _s3rec("beauty", "Beauty.txt", "226cce9c3105299ca0db9615d7d3fb32b3175e90da43100ae352599f0f0107b8"),
        _s3rec(
            "sports",
            "Sports_and_Outdoors.txt",
            "2a095e0648872beb9982408958290f5d655db5be2911c3756b5446de9f0b8de2",
        ),
        _s3rec(
            "toys",
            "Toys_and_Games.txt",
            "176c680c688d497598c4a89a03b402c0fe78d795e5db335c2e78dd5f2d778a3f",
        ),
        _s3rec("yelp", "Yelp.txt", "724b219106b81dd2349027da997334ddb6da9fe2f152ad6e0d97a93170f7caed"),
        _s3rec("lastfm", "LastFM.txt", "9ded486adb5b0fe9dc761950afa0a9a05e93ff018992e0c52bf11afec529f802"),
        Dataset(
            "ml-latest-small",
            "table",
            RawFile(
                "raw/ml-latest-small/ratings.csv",
                "821795331fd974bbe7a8416f2a7eec2b548a485dedb47a073580b0a9a8a0a8d2",
                "https://files.grouplens.org/datasets/movielens/ml-latest-small.zip",
                zip_member="ml-latest-small/ratings.csv",
            ),
        ),
    )
}

SIDE_FILES: dict[str, RawFile] = {
    "beauty_titles": RawFile(
        "titles/s3rec_Beauty_id2asin_title.tsv",
        "840d505418f158a930bf3c5570152f00481d5161a9aabe34d175e9dbe78c8f4e",
    ),
}


def dataset_names() -> list[str]:
    """Valid ``data.dataset`` values: the registered names, then ``table``."""
    return [*DATASETS, TABLE]


def get_dataset(data: DataParams) -> Dataset:
    """The :class:`Dataset` for ``data.dataset``; ``table`` builds one from ``data.table.path/sha256``."""
    if data.dataset == TABLE:
        if not data.table.path:
            raise InputError("params: data.table.path: must name a file when data.dataset is 'table'")
        return Dataset(TABLE, "table", RawFile(data.table.path, data.table.sha256))
    if data.dataset not in DATASETS:
        raise InputError(
            f"params: data.dataset: unknown dataset {data.dataset!r}; "
            f"valid names: {', '.join(dataset_names())}"
        )
    return DATASETS[data.dataset]


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file, streamed in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def check_sha256(path: Path, expected: str | None, label: str | None = None) -> str:
    """Return the file's SHA-256; raise :class:`InputError` if ``expected`` is given and differs."""
    actual = sha256_file(path)
    if expected is not None and actual != expected.lower():
        raise InputError(f"{label or path}: SHA-256 mismatch: expected {expected}, got {actual}")
    return actual


def mirror_dir() -> Path | None:
    """The mirror root from ``$LLMD4REC_DATA_MIRROR`` (None when unset or empty)."""
    value = os.environ.get(MIRROR_ENV, "")
    return Path(value) if value else None


def candidates(raw: RawFile, raw_dir: str | os.PathLike[str] = DEFAULT_RAW_DIR) -> list[Path]:
    """Local places searched for ``raw``, in lookup order (an absolute path is its only candidate)."""
    rel = Path(raw.rel_path)
    if rel.is_absolute():
        return [rel]
    mirror = mirror_dir()
    return [Path(raw_dir) / rel] + ([mirror / rel] if mirror is not None else [])


def locate(
    raw: RawFile,
    raw_dir: str | os.PathLike[str] = DEFAULT_RAW_DIR,
    opener: Opener | None = None,
) -> tuple[Path, str]:
    """Find (or download) ``raw``, verify its SHA-256 and return ``(path, sha256)``.

    ``opener`` opens a URL for reading (default :func:`urllib.request.urlopen`); tests inject their own.
    """
    places = candidates(raw, raw_dir)
    for path in places:
        if path.is_file():
            untracked = Path(raw.rel_path).is_absolute() or path != Path(raw_dir) / raw.rel_path
            if untracked and raw.sha256 is None:  # DVC tracks data/raw/ only: pin other files by hash
                raise InputError(
                    f"params: data.table.sha256: required for {path}, which lies outside {raw_dir} "
                    "where DVC cannot see it change"
                )
            return path, check_sha256(path, raw.sha256)
    if raw.url is None or Path(raw.rel_path).is_absolute():
        where = " or ".join(str(p) for p in places)
        hint = "" if mirror_dir() is not None else f" (${MIRROR_ENV} is not set)"
        raise InputError(f"{raw.rel_path}: not found at {where}{hint} and no download URL is known")
    target = Path(raw_dir) / raw.rel_path
    return target, download(raw, target, opener or urllib.request.urlopen)


def locate_side_file(name: str, raw_dir: str | os.PathLike[str] = DEFAULT_RAW_DIR) -> Path:
    """Path of a registered side file (e.g. ``beauty_titles``), checked like a dataset file."""
    if name not in SIDE_FILES:
        raise InputError(f"unknown side file {name!r}; valid names: {', '.join(SIDE_FILES)}")
    return locate(SIDE_FILES[name], raw_dir)[0]


@contextlib.contextmanager
def _temp_dir_next_to(target: Path) -> Iterator[Path]:
    """A temporary directory beside ``target`` (same file system, so a rename is atomic), always removed."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".download", dir=target.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _fetch(url: str, dest: Path, opener: Opener) -> None:
    """Stream ``url`` into ``dest``; network and file errors become one-line :class:`InputError`."""
    try:
        with opener(url) as response, open(dest, "wb") as out:
            shutil.copyfileobj(response, out, CHUNK)
    except (OSError, ValueError, http.client.HTTPException) as exc:  # URLError/HTTPError are OSErrors
        raise InputError(f"cannot download {url}: {getattr(exc, 'reason', exc)}") from None


def _extract(archive: Path, member: str, dest: Path, url: str) -> None:
    """Copy ``member`` of the zip ``archive`` to ``dest``."""
    try:
        with zipfile.ZipFile(archive) as zf, zf.open(member) as src, open(dest, "wb") as out:
            shutil.copyfileobj(src, out, CHUNK)
    except zipfile.BadZipFile:
        raise InputError(f"{url}: downloaded file is not a zip archive") from None
    except KeyError:
        raise InputError(f"{url}: zip archive has no member {member}") from None


def download(raw: RawFile, target: Path, opener: Opener) -> str:
    """Download ``raw.url`` to ``target`` via a temporary file; verify the hash before the rename."""
    assert raw.url is not None
    with _temp_dir_next_to(target) as tmp:
        fetched = tmp / "download"
        _fetch(raw.url, fetched, opener)
        if raw.zip_member is not None:
            member = tmp / "member"
            _extract(fetched, raw.zip_member, member, raw.url)
            fetched = member
        label = f"{raw.rel_path} (downloaded from {raw.url})"
        digest = check_sha256(fetched, raw.sha256, label)
        os.replace(fetched, target)
    return digest
