"""Reading and writing safetensors one tensor at a time, without memory-mapping the file.

The safetensors library maps a whole file into memory; every page a merge touches
then counts toward the process, so merging a 5 GB shard costs 5 GB. Here the
header is parsed by hand, each tensor is read with a plain ``read`` into its own
buffer, and the output header is computed up front (shapes are known, only the
dtype changes), so tensors are written as they are merged. Memory stays at about
one tensor. The format: 8-byte little-endian header length, a JSON header of
``{name: {dtype, shape, data_offsets}}``, then the tensor bytes.
"""

import json
import math
import struct
from collections.abc import Iterator
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


def iter_tensors(path: Path) -> Iterator[tuple[str, torch.Tensor]]:
    """Each tensor of the file in storage order, read into memory of its own."""
    header, start = read_header(path)
    with open(path, "rb") as handle:
        for name, entry in sorted(header.items(), key=lambda item: item[1]["data_offsets"][0]):
            begin, end = entry["data_offsets"]
            handle.seek(start + begin)
            data = bytearray(end - begin)
            handle.readinto(data)  # straight into the tensor's buffer: no second copy of the bytes
            tensor = torch.frombuffer(data, dtype=DTYPES[entry["dtype"]]) if data else \
                torch.empty(0, dtype=DTYPES[entry["dtype"]])
            del data
            yield name, tensor.reshape(entry["shape"])
            del tensor


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
        expected = self.order[len(self.written)]
        dtype, shape = self.layout[name]
        if name != expected or tensor.dtype != dtype or list(tensor.shape) != list(shape):
            raise ValueError(f"tensor {name} {tensor.dtype} {list(tensor.shape)} does not match the declared "
                             f"{expected} {dtype} {list(shape)}")
        self.handle.write(memoryview(tensor.contiguous().reshape(-1).view(torch.uint8).numpy()))
        self.written.append(name)

    def close(self) -> None:
        self.handle.flush()
        self.handle.close()
        if len(self.written) != len(self.order):
            raise ValueError(f"{len(self.order) - len(self.written)} declared tensors were never written")
