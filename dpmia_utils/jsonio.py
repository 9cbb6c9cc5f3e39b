"""Files written whole or not at all, and strict JSON: the one writer every module uses.

A reader (another worker, a resumed grid, the book) sees the old file or the new one, never a
part: each writer goes through a temporary file in the same folder, fsync, then rename.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

import numpy as np


class JSONFileError(ValueError):
    """A JSON file is missing, truncated or corrupted (the message names the path)."""


def atomic_write(path: str | Path, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(handle)` on a temporary file beside `path`, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_bytes(path: str | Path, payload: bytes) -> None:
    """Write bytes atomically."""
    atomic_write(path, lambda handle: handle.write(payload))


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write text (UTF-8) atomically."""
    atomic_write_bytes(path, text.encode())


def atomic_savez(path: str | Path, arrays: dict[str, np.ndarray]) -> None:
    """Write an uncompressed .npz atomically."""
    atomic_write(path, lambda handle: np.savez(handle, **arrays))


def jsonable(value: Any) -> Any:
    """Numpy scalars and arrays, tuples and paths as plain JSON values; non-finite floats as None."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return jsonable(value.tolist())
    if isinstance(value, np.generic):
        return jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Path):
        return str(value)
    return value


def dumps(payload: Any) -> str:
    """Strict JSON (NaN and infinity refused), keys sorted, indented: the records' format."""
    return json.dumps(payload, indent=2, sort_keys=True, allow_nan=False) + "\n"


def atomic_write_json(path: str | Path, payload: Any) -> None:
    """Write strict JSON atomically; NaN is refused so that every record is strict JSON."""
    atomic_write_text(path, dumps(payload))


def read_json(path: str | Path) -> Any:
    """Read a JSON file; JSONFileError (naming the path) when it is missing or truncated."""
    try:
        return json.loads(Path(path).read_text())
    except FileNotFoundError:
        raise JSONFileError(f"{path}: missing") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise JSONFileError(f"{path}: not valid JSON ({exc}); truncated or corrupted") from None
