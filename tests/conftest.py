"""Shared fixtures: tiny random models of every decoder family, the organism teacher, SmolLM2, GSM8K."""

import os
from pathlib import Path

import pytest
import torch

os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
GSM8K_DIR = REPO.parent / "shared" / "data" / "gsm8k"


ACCEPTANCE = (
    "the acceptance tier (the whole default study and its checks, about 15 minutes) runs apart: "
    "pytest tests -m acceptance (CI runs it after the suite)"
)


def pytest_collection_modifyitems(config, items):
    cuda = torch.cuda.is_available()
    asked = "acceptance" in (config.getoption("markexpr") or "")  # -m acceptance (or any expression naming it)
    for item in items:
        if "gpu" in item.keywords and not cuda:
            item.add_marker(pytest.mark.skip(reason="needs CUDA"))
        if "acceptance" in item.keywords and not asked:
            item.add_marker(pytest.mark.skip(reason=ACCEPTANCE))


@pytest.fixture(scope="session")
def organism_tokenizer():
    from lprecover.organism.tokenizer import build_tokenizer

    return build_tokenizer()


@pytest.fixture(scope="session")
def teacher_path():
    """The cached organism teacher, built on first use (about 5 minutes on 2 cores)."""
    from lprecover.organism.build import ensure_teacher

    return ensure_teacher()


@pytest.fixture(scope="session")
def smollm2_path():
    from lprecover.smollm2 import ensure_smollm2

    return ensure_smollm2()


@pytest.fixture(scope="session")
def gsm8k_dir():
    if not (GSM8K_DIR / "test.jsonl").exists():
        pytest.skip(f"GSM8K not found at {GSM8K_DIR} (it ships only with the CI checkout's shared/ folder)")
    return GSM8K_DIR


@pytest.fixture(scope="session")
def smollm2_gsm8k_args(smollm2_path, gsm8k_dir):
    """Recovery overrides for SmolLM2 pruned by its two middle layers (14, 15), trained on GSM8K traces."""
    return [
        f"model.name_or_path={smollm2_path}",
        "prune.method=selection",
        "prune.layers=[14,15]",
        "data=gsm8k",
        f"data.source_path={gsm8k_dir / 'train.jsonl'}",
        f"data.eval_paths={{gsm8k: {gsm8k_dir / 'test.jsonl'}}}",
    ]


@pytest.fixture(scope="session")
def mini_study(tmp_path_factory, teacher_path):
    """A small real study: pruned 1 and 2 layers, two recoveries (full SFT, LoRA), every model evaluated, compared."""
    from lprecover.config import load_config
    from lprecover.study import StudyConfig, run_study

    out = tmp_path_factory.mktemp("study") / "study"
    args = [
        "recipes=[sft_short,lora_longcot]",
        "steps=20",
        "evaluate_at=[0.25,0.5]",
        "eval.num_problems=12",
        "eval.n_samples=4",
        "eval.budgets=[5,20,40]",
        "eval.bootstrap=200",
        "report_to=auto",
        f"output_dir={out}",
    ]
    cfg = load_config(StudyConfig, args)
    run_study(cfg)
    return out, cfg
