"""Reading a dataset file into checked examples, each tagged with the line it starts on.

Two layouts are read: JSONL (one object per line, blank lines ignored) and a
JSON array (the first non-blank character is ``[``). Both may start with a
UTF-8 BOM and use CRLF line endings. ``backprop validate`` and the train
stage both call ``load_dataset``, so a file that validates is a file that trains.
"""

from __future__ import annotations

import gzip
import io
import json
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from backpropagate.contract import bounded_json
from backpropagate.contract.dataset.formats import FORMATS, Example, RowInvalid, RowOfAnotherFormat, parse_row
from backpropagate.contract.errors import BackpropError
from backpropagate.contract.user_files import FileRefused, check_user_file, open_user_file

_BOM = b"\xef\xbb\xbf"
_GZIP_MAGIC = b"\x1f\x8b"
# UTF-32 first: its little-endian mark starts with UTF-16's.
_OTHER_BOMS = ((b"\xff\xfe\x00\x00", "UTF-32", "UTF-32"), (b"\x00\x00\xfe\xff", "UTF-32", "UTF-32"),
               (b"\xff\xfe", "UTF-16", "UTF-16"), (b"\xfe\xff", "UTF-16", "UTF-16"))
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # the whitespace JSON allows between values
# A row's limit, in bytes: some 250k tokens, past any context a run here trains. Tokenizing a bigger one
# costs minutes and gigabytes before its first event (a 50 MB row: 180 s, 7.3 GB), so it is refused unread.
MAX_ROW_BYTES = 1 << 20
# A JSON array is decoded whole, so its size is bounded too (a gzipped one is counted unpacked); JSONL
# is read a row at a time and has no such limit.
MAX_ARRAY_BYTES = 1 << 30
_WHAT = "JSONL or JSON file"  # what --data takes, in the fixes


@dataclass(frozen=True)
class Problem:
    line: int
    reason: str
    other_format: str | None = field(default=None, compare=False, kw_only=True)  # a row of this other format


@dataclass(frozen=True)
class RowTooLong(Problem):
    length: int  # bytes


@dataclass(frozen=True)
class Dataset:
    path: Path
    format: str  # "sharegpt" | "openai" | "alpaca" | "text"
    examples: tuple[Example, ...]
    total_rows: int  # rows seen (valid + dropped)
    dropped: tuple[Problem, ...]  # rows skipped with --skip-invalid


@dataclass(frozen=True)
class _Row:
    line: int
    value: object


def dataset_file(path: str | Path, option: str = "--data") -> Path:
    """The absolute path of a dataset file the user named with ``option``, checked before anything reads it."""
    try:
        return check_user_file(path, option, _WHAT)
    except FileRefused as refused:
        raise _unreadable(Path(path), refused) from None


def load_dataset(path: str | Path, format: str = "auto", skip_invalid: bool = False) -> Dataset:
    """Read and check every row of ``path``.

    Without ``skip_invalid`` the first bad row raises ``INPUT_DATASET_INVALID``;
    with it, bad rows are dropped and listed in ``Dataset.dropped``.
    """
    path = Path(path)
    if format != "auto" and format not in FORMATS:
        raise BackpropError(
            "CONFIG_VALUE_INVALID",
            name="format",
            value=format,
            reason="not a dataset format",
            allowed="auto, " + ", ".join(FORMATS),
        )
    expected, origin = (None, "") if format == "auto" else (format, "set by --format")
    examples: list[Example] = []
    dropped: list[Problem] = []
    total = 0
    for row in _read_rows(path):
        total += 1
        result = _check(row, expected, origin)
        if isinstance(result, Problem):
            if result.other_format and format != "auto" and not examples:
                # No row of the forced format yet: it is --format that is wrong, not this row.
                raise BackpropError("INPUT_DATASET_FORMAT_MISMATCH", location=f"{path}:{result.line}",
                                    found=result.other_format, expected=format)
            if not skip_invalid and isinstance(result, RowTooLong):
                raise row_too_long(path, result, others_may_train=True)
            if not skip_invalid:
                raise _invalid(path, result.line, result.reason)
            dropped.append(result)
            continue
        found, example = result
        if expected is None:
            expected, origin = found, f"from line {example.line}"
        examples.append(example)
    if total == 0:
        with _open(path) as file:
            array = _first_byte(file) == b"["
        raise BackpropError("INPUT_DATASET_EMPTY", path=str(path),
                            what="it is an empty JSON array" if array else "it is empty or blank")
    if not examples:
        first = dropped[0]
        if isinstance(first, RowTooLong) and len(dropped) == 1:
            raise row_too_long(path, first, others_may_train=False)
        raise _invalid(path, first.line, f"no valid rows remain ({total} of {total} invalid); first problem: {first.reason}")
    return Dataset(path, expected, tuple(examples), total, tuple(dropped))


def _check(row: _Row | Problem, expected: str | None, origin: str) -> tuple[str, Example] | Problem:
    if isinstance(row, Problem):
        return row
    surrogate = _lone_surrogate(row.value)
    if surrogate:
        return Problem(row.line, f"{surrogate} holds a lone surrogate, which is not valid Unicode (half of a "
                                 "UTF-16 pair, such as a cut emoji)")
    try:
        return parse_row(row.value, row.line, expected, origin)
    except RowOfAnotherFormat as error:
        return Problem(row.line, str(error), other_format=error.found)
    except RowInvalid as error:
        return Problem(row.line, str(error))


def _lone_surrogate(value) -> str | None:
    """Where in a row a string holds a lone surrogate (JSON can spell one, \\ud800; no text can hold it).
    Walked without recursion: a deeply nested row must not cost a RecursionError here."""
    pending = [("row", value)]
    while pending:
        where, item = pending.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return where
        elif isinstance(item, dict):
            pending += reversed([(f"{where}.{key}", inner) for key, inner in item.items()])
        elif isinstance(item, list):
            pending += reversed([(f"{where}[{i}]", inner) for i, inner in enumerate(item)])
    return None


def row_too_long(path: Path, problem: RowTooLong, others_may_train: bool) -> BackpropError:
    return BackpropError("INPUT_DATASET_ROW_TOO_LONG", location=f"{path}:{problem.line}",
                         length=f"{problem.length:,}", limit=f"{MAX_ROW_BYTES:,}",
                         or_skip=", or pass --skip-invalid to train on the other rows without it"
                         if others_may_train else "")


def _invalid(path: Path, line: int, reason: str) -> BackpropError:
    return BackpropError("INPUT_DATASET_INVALID", location=f"{path}:{line}", reason=reason)


def _read_rows(path: Path) -> Iterator[_Row | Problem]:
    """Every row in file order: its value, or why it is not JSON at all."""
    _refuse_other_encodings(path)
    with _open(path) as file:
        is_array = _first_byte(file) == b"["
        file.seek(0)
        if not is_array:
            yield from _jsonl_rows(file, path)
            return
        data = file.read(MAX_ARRAY_BYTES + 1)
    if len(data) > MAX_ARRAY_BYTES:
        raise BackpropError("INPUT_DATASET_ARRAY_BROKEN", location=f"{path}:1", reason=f"the array is over "
                            f"{MAX_ARRAY_BYTES:,} bytes, which is more than is read whole",
                            remedy="write the file as JSONL (one object per line), which is read a row at a time")
    rows = _array_rows(path, data)
    yield from _jsonl_rows(io.BytesIO(data), path) if rows is None else rows


def _open(path: Path) -> BinaryIO:
    """The file's bytes; a gzipped file (by its magic bytes, whatever its name) decompressed as it is read."""
    try:
        file = open_user_file(path, "--data", _WHAT)
    except FileRefused as refused:
        raise _unreadable(path, refused) from None
    gzipped = file.read(2) == _GZIP_MAGIC
    file.seek(0)
    return _Gunzipped(file) if gzipped else file


class _Gunzipped(gzip.GzipFile):
    """A gzipped file read unpacked, closing the file under it (a plain GzipFile leaves a given file open)."""

    def __init__(self, file: BinaryIO) -> None:
        super().__init__(fileobj=file, mode="rb")
        self._packed = file

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._packed.close()


def _unreadable(path: Path, refused: FileRefused) -> BackpropError:
    if refused.missing:
        return BackpropError("INPUT_DATASET_NOT_FOUND", path=str(path))
    return BackpropError("INPUT_DATASET_UNREADABLE", path=str(path), reason=refused.reason, remedy=refused.remedy)


def _refuse_other_encodings(path: Path) -> None:
    """UTF-16 and UTF-32 by their byte order mark, before any row is counted (their bytes split oddly)."""
    with _open(path) as file:
        start = file.read(4)
    for bom, name, iconv in _OTHER_BOMS:
        if start.startswith(bom):
            raise _encoding_error(path, f"it is {name} (it starts with a {name} byte order mark)", iconv)


def _encoding_error(path: Path, found: str, iconv: str) -> BackpropError:
    return BackpropError("INPUT_DATASET_ENCODING", path=str(path), found=found, iconv=iconv,
                         utf8=str(path.with_name(path.stem + ".utf8" + path.suffix)))


def _first_byte(file: BinaryIO) -> bytes:
    """The first byte after any BOM and whitespace; empty for a blank file."""
    chunk = file.read(1 << 16).removeprefix(_BOM)
    while chunk:
        if stripped := chunk.lstrip():
            return stripped[:1]
        chunk = file.read(1 << 16)
    return b""


def _too_long(line: int, length: int) -> RowTooLong:
    return RowTooLong(line, f"the row is {length:,} bytes long, over the limit of {MAX_ROW_BYTES:,}", length)


def _lines(file: BinaryIO) -> Iterator[bytes | int]:
    """Each line's bytes; for a line over MAX_ROW_BYTES, its length alone, counted without holding it."""
    # Splitting on b"\n" only, so line numbers match what an editor shows even with
    # CRLF endings or stray U+2028 inside strings.
    while raw := file.readline(MAX_ROW_BYTES + 1):
        if len(raw) <= MAX_ROW_BYTES or raw.endswith(b"\n"):
            yield raw
            continue
        length, tail = len(raw), raw[-2:]
        while raw and not raw.endswith(b"\n"):
            raw = file.readline(1 << 20)
            length, tail = length + len(raw), (tail + raw)[-2:]
        yield length - (len(tail) - len(tail.rstrip(b"\r\n")))


def _jsonl_rows(file: BinaryIO, path: Path) -> Iterator[_Row | Problem]:
    for number, raw in enumerate(_lines(file), start=1):
        if isinstance(raw, int):
            yield _too_long(number, raw)
            continue
        if number == 1:
            raw = raw.removeprefix(_BOM)
        if not raw.strip():
            continue
        try:
            # Without its line ending, json's column for a cut-off row points at the row's end.
            text = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError as error:
            where = f"line {number} has byte 0x{raw[error.start]:02x} at column {error.start + 1}"
            try:
                raw.decode("cp1252")
            except UnicodeDecodeError:
                yield Problem(number, f"not valid UTF-8: byte 0x{raw[error.start]:02x} at column {error.start + 1}")
                continue
            # Not one bad row but the whole file's encoding: skipping such rows would drop them silently.
            raise _encoding_error(path, f"{where}, which reads as latin-1 / Windows-1252",
                                  "WINDOWS-1252") from None
        try:
            yield _Row(number, bounded_json.loads(text))
        except json.JSONDecodeError as error:
            yield Problem(number, f"not valid JSON: {error.msg} (column {error.colno})")
        except bounded_json.JSONTooComplex as error:
            yield Problem(number, f"too complex to read: {error}")


def _array_rows(path: Path, data: bytes) -> list[_Row | Problem] | None:
    """The rows of a JSON array file, or None when the file is JSONL whose first row is a list."""
    # A broken array cannot be resynchronised, so these errors are fatal even
    # with --skip-invalid; the whole array is walked before any row is checked.
    data = data.removeprefix(_BOM)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        line = data.count(b"\n", 0, error.start) + 1
        raise _invalid(path, line, f"not valid UTF-8: byte 0x{data[error.start]:02x}") from None
    try:
        rows, close = _walk_array(text)
        rest = _WHITESPACE.match(text, close + 1).end()
        if rest == len(text):
            return rows
        if "\n" not in text[text.index("[") : close]:
            return None  # the "array" was one JSONL row, and more rows follow it
        raise json.JSONDecodeError("Extra data", text, rest)
    except json.JSONDecodeError as error:
        if error.msg == "Expecting value" and text.startswith("]", error.pos) and _after_comma(text, error.pos):
            raise BackpropError("INPUT_DATASET_ARRAY_BROKEN", location=f"{path}:{error.lineno}",
                                reason=f"a trailing comma before the closing ] (column {error.colno})",
                                remedy="remove the comma after the last element") from None
        raise BackpropError("INPUT_DATASET_ARRAY_BROKEN", location=f"{path}:{error.lineno}",
                            reason=f"{error.msg} (column {error.colno})",
                            remedy="repair the array at that line, or write the file as JSONL (one object per "
                                   "line)") from None


def _after_comma(text: str, pos: int) -> bool:
    return text[:pos].rstrip(" \t\n\r").endswith(",")


def _walk_array(text: str) -> tuple[list[_Row | Problem], int]:
    """Decode a JSON array one element at a time, to know the line each starts on.

    Returns the rows and the position of the closing bracket.
    """
    pos = _WHITESPACE.match(text, text.index("[") + 1).end()
    rows: list[_Row | Problem] = []
    line, counted = 1, 0
    if text.startswith("]", pos):
        return rows, pos
    while True:
        line, counted = line + text.count("\n", counted, pos), pos
        try:
            value, end = bounded_json.decode_at(text, pos)  # raises json's own error for a broken element
        except bounded_json.JSONTooComplex as error:
            if error.end is None:
                raise json.JSONDecodeError(f"an element {error} never closes", text, pos) from None
            rows.append(Problem(line, f"too complex to read: {error}"))
            pos = _WHITESPACE.match(text, error.end).end()
        else:
            length = len(text[pos:end].encode("utf-8")) if end - pos > MAX_ROW_BYTES // 4 else 0
            rows.append(_too_long(line, length) if length > MAX_ROW_BYTES else _Row(line, value))
            pos = _WHITESPACE.match(text, end).end()
        if not text.startswith(",", pos):
            break
        pos = _WHITESPACE.match(text, pos + 1).end()
    if not text.startswith("]", pos):
        raise json.JSONDecodeError("Expecting ',' delimiter", text, pos)
    return rows, pos
