"""The phenotype file: a CSV of sample IDs and trait columns, parsed into a float frame.

Missing values (``NA``, empty, ...) become NaN; anything else that is not a finite number is a
:class:`DataError` naming the line, the trait and the sample.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pandas as pd

from .sources import (
    PHENOTYPE_FILE,
    DataError,
    check_unique,
    decode,
    normalize_text_bytes,
    read_source,
    row_sample_id,
)

_PHENOTYPE_MISSING_TOKENS = frozenset({"", "NA", "NaN", "nan", "N/A"})


def _phenotype_rows(path: Path) -> tuple[csv.reader, str]:
    data, label = read_source(path, PHENOTYPE_FILE)
    data = normalize_text_bytes(data, label)
    text = decode(data, label, "the file")
    if not text.strip():
        raise DataError(f"{label}: the phenotype file is empty")
    return csv.reader(io.StringIO(text, newline="")), label


def _phenotype_header(header: list[str], label: str) -> list[str]:
    if len(header) < 2:
        if header and "\t" in header[0]:
            raise DataError(
                f"{label}: the header on line 1 has tabs but no commas; the phenotype file must "
                f"be comma-separated"
            )
        raise DataError(f"{label}: the header on line 1 has no trait columns after the ID")
    traits = [cell.strip() for cell in header[1:]]
    empty = [i + 2 for i, t in enumerate(traits) if not t]
    if empty:
        raise DataError(f"{label}: line 1 (header): empty trait name in column(s) {empty[:5]}")
    check_unique(traits, label, "trait column", "header column")
    return traits


def read_phenotype_traits(path: str | Path) -> list[str]:
    """The trait column names of a phenotype file (its header), without parsing the values."""
    rows, label = _phenotype_rows(Path(path))
    return _phenotype_header(next(rows), label)


def read_phenotypes(path: str | Path) -> pd.DataFrame:
    """Parse a phenotype CSV (sample ID column, then traits) into a float frame indexed by ID."""
    path = Path(path)
    rows, label = _phenotype_rows(path)
    try:
        traits = _phenotype_header(next(rows), label)
        sample_ids: list[str] = []
        line_numbers: list[int] = []
        values: list[list[float]] = []
        for cells in rows:
            line = rows.line_num
            if not any(cell.strip() for cell in cells):
                continue
            sample = row_sample_id(cells, len(traits), label, line, "comma", "trait")
            row = []
            for column, token in enumerate(cells[1:]):
                stripped = token.strip()
                if stripped in _PHENOTYPE_MISSING_TOKENS:
                    row.append(np.nan)
                    continue
                try:
                    number = float(stripped)
                except ValueError:
                    number = np.nan
                    problem = "non-numeric"
                else:
                    problem = "" if np.isfinite(number) else "non-finite"
                if problem:
                    raise DataError(
                        f"{label}: line {line}, column {column + 2} (trait {traits[column]}), "
                        f"sample {sample}: {problem} phenotype value {token!r}"
                    )
                row.append(number)
            sample_ids.append(sample)
            line_numbers.append(line)
            values.append(row)
    except csv.Error as exc:
        raise DataError(f"{label}: line {rows.line_num}: malformed CSV: {exc}") from exc
    if not sample_ids:
        raise DataError(f"{label}: the phenotype file has a header but no sample rows")
    check_unique(sample_ids, label, "sample ID", "line", line_numbers)
    frame = pd.DataFrame(
        np.asarray(values, dtype=np.float64),
        index=pd.Index(sample_ids, dtype=object, name="sample_id"),
        columns=traits,
    )
    frame.attrs["source"] = str(path)
    return frame
