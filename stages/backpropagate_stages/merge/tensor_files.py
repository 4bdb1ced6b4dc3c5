"""Reading and writing safetensors one tensor at a time, without memory-mapping the file.

The safetensors library maps a whole file into memory; every page a merge touches
then counts toward the process, so merging a 5 GB shard costs 5 GB. Here the
header is parsed by hand, each tensor is read with a plain ``read`` into its own
buffer (or in pieces, for one that is only copied), and the output header is
computed up front (shapes are known, only the dtype changes), so tensors are
written as they are merged. The format: 8-byte little-endian header length, a
JSON header of ``{name: {dtype, shape, data_offsets}}``, then the tensor bytes.
"""

import json
import math
import struct
from collections.abc import Iterable, Iterator
from pathlib import Path

import torch

DTYPES = {
    "F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
    "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
    "BOOL": torch.bool, "F8_E4M3": torch.float8_e4m3fn, "F8_E5M2": torch.float8_e5m2,
}
NAMES = {dtype: name for name, dtype in DTYPES.items()}


def read_header(path: Path) -> tuple[dict[str, dict], int]:
    """The tensor entries (without __metadata__) and where the data starts."""
    with open(path, "rb") as handle:
        (length,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(length))
    header.pop("__metadata__", None)
    return header, 8 + length


class TensorFileReader:
    """A safetensors file opened for reading one tensor (or one piece of a tensor) at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.header, self.start = read_header(path)
        self.names = sorted(self.header, key=lambda name: self.header[name]["data_offsets"][0])  # storage order
        self.handle = open(path, "rb")

    def __enter__(self) -> "TensorFileReader":
        return self

    def __exit__(self, *exc_info) -> None:
        self.handle.close()

    def dtype(self, name: str) -> torch.dtype:
        return DTYPES[self.header[name]["dtype"]]

    def shape(self, name: str) -> list[int]:
        return list(self.header[name]["shape"])

    def read(self, name: str) -> torch.Tensor:
        """The whole tensor, read into memory of its own."""
        begin, end = self.header[name]["data_offsets"]
        return self._read_flat(begin, end, self.dtype(name)).reshape(self.shape(name))

    def read_pieces(self, name: str, max_bytes: int) -> Iterator[torch.Tensor]:
        """The tensor flattened, as consecutive pieces of whole elements, each at most ``max_bytes``."""
        dtype = self.dtype(name)
        size = torch.empty(0, dtype=dtype).element_size()
        step = max(size, max_bytes // size * size)
        begin, end = self.header[name]["data_offsets"]
        for offset in range(begin, end, step):
            yield self._read_flat(offset, min(offset + step, end), dtype)

    def _read_flat(self, begin: int, end: int, dtype: torch.dtype) -> torch.Tensor:
        if begin == end:
            return torch.empty(0, dtype=dtype)
        self.handle.seek(self.start + begin)
        data = bytearray(end - begin)
        if self.handle.readinto(data) != len(data):  # straight into the tensor's buffer: no second copy
            raise ValueError(f"{self.path} is truncated: it ends inside a tensor")
        return torch.frombuffer(data, dtype=dtype)


class TensorFileWriter:
    """Writes a safetensors file whose tensors (names, shapes, dtypes) are declared up front."""

    def __init__(self, path: Path, layout: dict[str, tuple[torch.dtype, list[int]]], metadata: dict) -> None:
        header: dict = {"__metadata__": metadata}
        offset = 0
        for name, (dtype, shape) in layout.items():
            size = math.prod(shape) * torch.empty(0, dtype=dtype).element_size()
            header[name] = {"dtype": NAMES[dtype], "shape": list(shape), "data_offsets": [offset, offset + size]}
            offset += size
        encoded = json.dumps(header, separators=(",", ":")).encode()
        encoded += b" " * (-len(encoded) % 8)  # the data starts 8-byte aligned, as the library writes it
        self.order = list(layout)
        self.layout = layout
        self.written: list[str] = []
        self.handle = open(path, "wb")
        self.handle.write(struct.pack("<Q", len(encoded)) + encoded)

    def write(self, name: str, tensor: torch.Tensor) -> None:
        if list(tensor.shape) != list(self.layout[name][1]):
            raise ValueError(f"tensor {name} {list(tensor.shape)} does not match the declared shape "
                             f"{list(self.layout[name][1])}")
        self.write_pieces(name, [tensor])

    def write_pieces(self, name: str, pieces: Iterable[torch.Tensor]) -> None:
        """Write tensor ``name`` from consecutive pieces of its flattened data."""
        expected = self.order[len(self.written)]
        dtype, shape = self.layout[name]
        if name != expected:
            raise ValueError(f"tensor {name} was written where the declared order has {expected}")
        count = 0
        for piece in pieces:
            if piece.dtype != dtype:
                raise ValueError(f"tensor {name} {piece.dtype} does not match the declared dtype {dtype}")
            self.handle.write(memoryview(piece.contiguous().reshape(-1).view(torch.uint8).numpy()))
            count += piece.numel()
        if count != math.prod(shape):
            raise ValueError(f"tensor {name} got {count} elements, its declared shape {list(shape)} holds "
                             f"{math.prod(shape)}")
        self.written.append(name)

    def finish(self) -> None:
        """Close the file, checking that every declared tensor was written."""
        self.close()
        if len(self.written) != len(self.order):
            raise ValueError(f"{len(self.order) - len(self.written)} declared tensors were never written")

    def close(self) -> None:
        self.handle.close()
