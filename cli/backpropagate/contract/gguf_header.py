"""A GGUF's key-value header, read fast, and its fixed-size values patched in place.

One reader for the host (Ollama registration reads a GGUF's template and tokens) and the gguf stage
(which corrects the token types llama.cpp's converter writes). Only the header is read: the tensors
that follow are never touched, so a multi-GB file costs one short walk.

gguf-py's GGUFReader builds a numpy view per array element: on a 262k-token vocabulary it took 26 s to open a
file, once per read. This walks the header with struct instead (a fraction of a second) and reads only the keys
asked for. A patch overwrites values of the same size where they lie, so the file's layout, and its tensors,
stay as the converter wrote them. Little-endian files only, which is what the converter writes by default.
"""

import mmap
import struct
from dataclasses import dataclass
from pathlib import Path

STRING, ARRAY = 8, 9
# GGUF value types with a fixed size, as struct formats.
FORMATS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}


class GgufHeaderError(ValueError):
    """The file is not a GGUF this reader understands; the message says why, for people."""


@dataclass(frozen=True)
class Field:
    offset: int  # where the value starts: the scalar, the string's length, or an array's first element
    type: int
    item_type: int | None = None  # of an array
    count: int = 1  # of an array's elements


def scan(path: Path) -> dict[str, Field]:
    """Every key of the header and where its value lies."""
    with open(path, "rb") as file:
        if Path(path).stat().st_size < 4 or file.read(4) != b"GGUF":
            raise GgufHeaderError("it does not start with GGUF")
        with mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
            try:
                return _fields(data)
            except struct.error:
                raise GgufHeaderError("the header is cut short") from None


def _fields(data) -> dict[str, Field]:
    version = struct.unpack_from("<I", data, 4)[0]
    if version not in (2, 3):
        raise GgufHeaderError(f"GGUF version {version} is not 2 or 3")
    n_kv = struct.unpack_from("<Q", data, 16)[0]
    fields, pos = {}, 24
    for _ in range(n_kv):
        key, pos = _string(data, pos)
        kind = struct.unpack_from("<I", data, pos)[0]
        pos += 4
        if kind == ARRAY:
            item_type, count = struct.unpack_from("<IQ", data, pos)
            fields[key] = Field(pos + 12, kind, item_type, count)
            pos = _skip_items(data, pos + 12, item_type, count)
        else:
            fields[key] = Field(pos, kind)
            pos = _skip_items(data, pos, kind, 1)
    return fields


def read(path: Path, keys=None) -> dict:
    """The values of ``keys`` (default: every key): numbers, strings or lists of them; None for a key the
    file lacks."""
    fields = scan(path)
    keys = fields if keys is None else keys
    with open(path, "rb") as file, mmap.mmap(file.fileno(), 0, access=mmap.ACCESS_READ) as data:
        return {key: _value(data, fields[key]) if key in fields else None for key in keys}


def patch(path: Path, key: str, values: dict[int, int | float | bool]) -> None:
    """Set elements of the fixed-size array ``key`` (index -> value), in place."""
    field = scan(path)[key]
    if field.type != ARRAY or field.item_type not in FORMATS:
        raise ValueError(f"{key} is not an array of fixed-size values")
    fmt = "<" + FORMATS[field.item_type]
    size = struct.calcsize(fmt)
    with open(path, "r+b") as file:
        for index, value in values.items():
            if not 0 <= index < field.count:
                raise IndexError(f"{key}[{index}] is outside its {field.count} elements")
            file.seek(field.offset + index * size)
            file.write(struct.pack(fmt, value))


def replace_array(path: Path, key: str, values: list) -> None:
    """Overwrite the whole fixed-size array ``key`` with as many ``values``, in place."""
    field = scan(path)[key]
    if field.type != ARRAY or field.item_type not in FORMATS or len(values) != field.count:
        raise ValueError(f"{key} is not an array of {len(values)} fixed-size values")
    with open(path, "r+b") as file:
        file.seek(field.offset)
        file.write(struct.pack(f"<{field.count}{FORMATS[field.item_type]}", *values))


def _string(data, pos: int) -> tuple[str, int]:
    length = struct.unpack_from("<Q", data, pos)[0]
    if pos + 8 + length > len(data):
        raise struct.error("a string runs past the end")
    return bytes(data[pos + 8: pos + 8 + length]).decode("utf-8", errors="replace"), pos + 8 + length


def _skip_items(data, pos: int, kind: int, count: int) -> int:
    if kind in FORMATS:
        return pos + count * struct.calcsize("<" + FORMATS[kind])
    if kind == STRING:
        for _ in range(count):
            pos += 8 + struct.unpack_from("<Q", data, pos)[0]
        return pos
    raise GgufHeaderError(f"unknown value type {kind}")


def _value(data, field: Field):
    if field.type != ARRAY:
        return _items(data, field.offset, field.type, 1)[0]
    return _items(data, field.offset, field.item_type, field.count)


def _items(data, pos: int, kind: int, count: int) -> list:
    if kind in FORMATS:
        return list(struct.unpack_from(f"<{count}{FORMATS[kind]}", data, pos))
    items = []
    for _ in range(count):
        text, pos = _string(data, pos)
        items.append(text)
    return items
