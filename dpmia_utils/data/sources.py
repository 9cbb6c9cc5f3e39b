"""The raw files' bytes as text: unzip or gunzip, strip a BOM, normalize line endings, decode.

Every reader of the yeast files (genotypes, phenotypes) starts here, and every problem with the
input, anywhere in the data layer, is a :class:`DataError` whose message names the file (the
zip member too), the line or sample, and the problem.
"""

from __future__ import annotations

import gzip
import re
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path

GENOTYPE_FILE = "genotype_full.txt"
PHENOTYPE_FILE = "phenotype.csv"

_BOM = b"\xef\xbb\xbf"
NON_BLANK = re.compile(rb"\S")


class DataError(ValueError):
    """Malformed or inconsistent input data; the message names the file, line and problem."""


def read_source(path: Path, expected_name: str) -> tuple[bytes, str]:
    """The bytes of a data file and a label naming it (``archive.zip (member)`` for zips)."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    name = path.name
    if name.lower().endswith(".zip"):
        try:
            with zipfile.ZipFile(path) as archive:
                members = [
                    info
                    for info in archive.infolist()
                    if not info.is_dir()
                    and not info.filename.startswith("__MACOSX/")
                    and not Path(info.filename).name.startswith("._")
                ]
                wanted = {expected_name}
                stem = name[: -len(".zip")]
                if stem not in (GENOTYPE_FILE, PHENOTYPE_FILE):  # e.g. mydata.txt.zip
                    wanted.add(stem)
                chosen = [m for m in members if Path(m.filename).name in wanted]
                if not chosen:
                    held = ", ".join(m.filename for m in members) or "no data file"
                    raise DataError(
                        f"{path}: the zip archive holds {held}, expected {expected_name}"
                    )
                member = chosen[0]
                return archive.read(member), f"{path} (member {member.filename})"
        except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{path}: not a readable zip archive (truncated or corrupt?): {exc}"
            ) from exc
    if name.lower().endswith(".gz"):
        try:
            return gzip.decompress(path.read_bytes()), str(path)
        except (gzip.BadGzipFile, EOFError, OSError, zlib.error) as exc:
            raise DataError(
                f"{path}: not a readable gzip file (truncated or corrupt?): {exc}"
            ) from exc
    return path.read_bytes(), str(path)


def normalize_text_bytes(data: bytes, label: str) -> bytes:
    """Drop a UTF-8 BOM and turn CRLF/CR line endings into LF; refuse UTF-16."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise DataError(f"{label}: the file is UTF-16 encoded; save it as UTF-8 text")
    if data.startswith(_BOM):
        data = data[len(_BOM) :]
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data


def decode(raw: bytes, label: str, where: str) -> str:
    """Decode UTF-8 text, naming the place when it is not UTF-8."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"{label}: {where} is not valid UTF-8 text ({exc.reason})") from exc


def row_sample_id(
    cells: Sequence[str], n_values: int, label: str, line: int, separator: str, unit: str
) -> str:
    """The sample ID of a data row, after checking that it has an ID and ``n_values`` values."""
    if len(cells) != n_values + 1:
        raise DataError(
            f"{label}: line {line} has {len(cells)} {separator}-separated fields, expected "
            f"{n_values + 1} (a sample ID and {n_values} {unit}s, as in the header)"
        )
    sample = cells[0].strip()
    if not sample:
        raise DataError(f"{label}: line {line} has an empty sample ID")
    return sample


def check_unique(
    ids: Sequence[str], label: str, what: str, unit: str, where: Sequence[int] | None = None
) -> None:
    """Raise naming the first few duplicated IDs and where (line or column) they occur."""
    if len(set(ids)) == len(ids):
        return
    where = where if where is not None else range(2, len(ids) + 2)
    positions: dict[str, list[int]] = {}
    for value, place in zip(ids, where, strict=True):
        positions.setdefault(value, []).append(int(place))
    duplicated = [(v, where) for v, where in positions.items() if len(where) > 1]
    shown = "; ".join(f"{v!r} ({unit}s {', '.join(map(str, w[:4]))})" for v, w in duplicated[:5])
    raise DataError(f"{label}: {len(duplicated)} duplicate {what}(s): {shown}")
