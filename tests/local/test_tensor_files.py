"""Streaming safetensors files are real safetensors: the library reads what we write, and we read what it writes."""

import pytest
import torch
from backpropagate_stages.merge.tensor_files import TensorFileReader, TensorFileWriter
from safetensors.torch import load_file, save_file

TENSORS = {
    "embed": torch.randn(7, 5, dtype=torch.bfloat16),
    "weight": torch.randn(3, 4),
    "half": torch.randn(2, 2, dtype=torch.float16),
    "ids": torch.arange(6, dtype=torch.int64).reshape(2, 3),
    "mask": torch.tensor([True, False, True]),
    "empty": torch.empty(0, 4),
}


def test_the_library_reads_a_file_we_wrote(tmp_path):
    path = tmp_path / "ours.safetensors"
    writer = TensorFileWriter(path, {k: (v.dtype, list(v.shape)) for k, v in TENSORS.items()}, {"format": "pt"})
    for name, tensor in TENSORS.items():
        writer.write(name, tensor)
    writer.finish()
    loaded = load_file(path)
    for name, tensor in TENSORS.items():
        assert torch.equal(loaded[name], tensor), name


def test_we_read_a_file_the_library_wrote(tmp_path):
    path = tmp_path / "theirs.safetensors"
    save_file(TENSORS, path)
    with TensorFileReader(path) as reader:
        ours = {name: reader.read(name) for name in reader.names}
    assert ours.keys() == TENSORS.keys()
    for name, tensor in TENSORS.items():
        assert torch.equal(ours[name], tensor), name


def test_a_tensor_that_differs_from_the_declared_layout_is_refused(tmp_path):
    writer = TensorFileWriter(tmp_path / "x.safetensors", {"w": (torch.float16, [2, 2])}, {})
    with pytest.raises(ValueError, match="does not match the declared"):
        writer.write("w", torch.zeros(2, 2))


def test_a_tensor_copied_in_pieces_is_the_same_tensor(tmp_path):
    """Pieces split between elements only, whatever the size asked for, and join back exactly."""
    source, copy = tmp_path / "source.safetensors", tmp_path / "copy.safetensors"
    save_file(TENSORS, source)
    with TensorFileReader(source) as reader:
        writer = TensorFileWriter(copy, {n: (reader.dtype(n), reader.shape(n)) for n in reader.names}, {})
        for name in reader.names:
            pieces = list(reader.read_pieces(name, max_bytes=7))
            size = reader.dtype(name).itemsize
            assert all(piece.numel() * size <= max(7 // size * size, size) for piece in pieces), name
            writer.write_pieces(name, pieces)
        writer.finish()
    loaded = load_file(copy)
    for name, tensor in TENSORS.items():
        assert torch.equal(loaded[name], tensor), name


def test_pieces_that_do_not_add_up_to_the_declared_shape_are_refused(tmp_path):
    writer = TensorFileWriter(tmp_path / "x.safetensors", {"w": (torch.float16, [2, 2])}, {})
    with pytest.raises(ValueError, match="got 3 elements"):
        writer.write_pieces("w", [torch.zeros(2, dtype=torch.float16), torch.zeros(1, dtype=torch.float16)])


def test_a_file_that_ends_inside_a_tensor_is_refused(tmp_path):
    path = tmp_path / "cut.safetensors"
    save_file({"w": torch.randn(64, 64)}, path)
    path.write_bytes(path.read_bytes()[:-100])
    with TensorFileReader(path) as reader, pytest.raises(ValueError, match="truncated"):
        reader.read("w")
