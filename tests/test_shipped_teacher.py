"""The default organism teacher ships with the package and is used only when its fingerprint matches."""

import json
import logging

import pytest
from safetensors.torch import load_file

from lprecover.organism import build
from lprecover.organism.build import CARD, SHIPPED_DIR, OrganismConfig, ensure_teacher, shipped_fingerprint


def test_the_shipped_teacher_is_the_default_and_reached_the_bar():
    card = json.loads((SHIPPED_DIR / CARD).read_text())
    assert shipped_fingerprint() == OrganismConfig().fingerprint() == card["fingerprint"]
    assert build.accepted(card["curve"], card["facts_accuracy"])


def test_an_empty_cache_gets_the_shipped_teacher_without_training(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LPRECOVER_CACHE", str(tmp_path))
    monkeypatch.setattr(build, "build_accepted", lambda *a: pytest.fail("a shipped teacher was trained again"))
    with caplog.at_level(logging.INFO):
        path = ensure_teacher()
    assert path == tmp_path / "organism" / f"teacher-{shipped_fingerprint()}"
    assert "installed from the package" in caplog.text
    ours, shipped = load_file(path / "model.safetensors"), load_file(SHIPPED_DIR / "model.safetensors")
    assert ours.keys() == shipped.keys() and all((ours[k] == shipped[k]).all() for k in ours)
    assert not list(tmp_path.glob("organism/*.tmp*")), "the copy was published whole"


def test_other_settings_train_a_teacher_and_say_so(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("LPRECOVER_CACHE", str(tmp_path))
    asked = OrganismConfig(hidden_size=32)
    built = []

    def fake_build(cfg, final):
        built.append(cfg.fingerprint())
        final.mkdir(parents=True)
        (final / CARD).write_text("{}")
        return {"train_seconds": 0.0}

    monkeypatch.setattr(build, "build_accepted", fake_build)
    with caplog.at_level(logging.INFO):
        ensure_teacher(asked)
    assert built == [asked.fingerprint()] != [shipped_fingerprint()]
    assert f"Training the organism teacher {asked.fingerprint()}" in caplog.text
