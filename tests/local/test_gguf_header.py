"""The gguf stage's fast header reader agrees with gguf-py, and its in-place patches change only what they name."""

import numpy as np
import pytest
from backpropagate.contract import gguf_header as header
from backpropagate_stages.gguf.llama_tools import tools_dir


@pytest.fixture
def gguf_file(tmp_path):
    import sys

    sys.path.insert(0, str(tools_dir() / "gguf-py"))
    import gguf

    path = tmp_path / "small.gguf"
    writer = gguf.GGUFWriter(path, arch="llama")
    writer.add_token_list(["<bos>", "<start_of_turn>", "héllo", "▁▁"])
    writer.add_token_types([3, 1, 1, 1])
    writer.add_token_scores([-1000.0] * 4)
    writer.add_bool("tokenizer.ggml.add_bos_token", True)
    writer.add_uint32("llama.block_count", 2)
    writer.add_tensor("w", np.arange(8, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


def test_the_header_reads_what_gguf_py_reads(gguf_file):
    import gguf

    reader = gguf.GGUFReader(gguf_file)
    keys = [name for name in reader.fields if not name.startswith("GGUF.")]
    ours = header.read(gguf_file, keys + ["not.there"])
    assert ours == {**{name: reader.fields[name].contents() for name in keys}, "not.there": None}


def test_a_patch_changes_the_named_values_in_place_and_nothing_else(gguf_file):
    import gguf

    before = gguf_file.read_bytes()
    header.patch(gguf_file, "tokenizer.ggml.token_type", {1: 3})
    header.replace_array(gguf_file, "tokenizer.ggml.scores", [0.0, -1.0, -2.0, -3.0])
    after = gguf_file.read_bytes()
    assert len(after) == len(before)
    reader = gguf.GGUFReader(gguf_file)
    assert reader.fields["tokenizer.ggml.token_type"].contents() == [3, 3, 1, 1]
    assert reader.fields["tokenizer.ggml.scores"].contents() == [0.0, -1.0, -2.0, -3.0]
    assert reader.fields["tokenizer.ggml.tokens"].contents() == ["<bos>", "<start_of_turn>", "héllo", "▁▁"]
    assert reader.tensors[0].data.tolist() == list(range(8))
    # One int32 and four float32 values differ: 20 bytes at most, nothing else moved.
    assert sum(a != b for a, b in zip(before, after)) <= 20


def test_a_patch_outside_the_array_is_refused(gguf_file):
    with pytest.raises(IndexError):
        header.patch(gguf_file, "tokenizer.ggml.token_type", {4: 3})
    with pytest.raises(ValueError):
        header.patch(gguf_file, "tokenizer.ggml.tokens", {0: 3})  # strings vary in size: no in-place patch
