"""Generation engines for evaluation: one interface, the same records.

``HFEngine`` runs transformers (CPU or GPU): batched budget forcing with the KV cache. ``VLLMEngine`` (the
``vllm`` extra) runs the same two-phase budget forcing on vLLM, with prefix caching so the n samples of a problem
share their prompt's KV blocks, and tensor parallelism for models that do not fit one GPU.
"""

from lprecover.evaluation.budget_forcing import (
    Generation,
    ThinkFormat,
    budget_forced_generate,
    cut,
    default_keys,
    force_budgets,
    generate_at_budgets,
)


class HFEngine:
    """Transformers generation on an already loaded model."""

    is_engine = True

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.config = model.config

    def generate(self, prompts, budget, fmt: ThinkFormat, **kwargs) -> list[Generation]:
        return budget_forced_generate(self.model, self.tokenizer, prompts, budget, fmt, **kwargs)

    def generate_budgets(self, prompts, budgets, fmt: ThinkFormat, **kwargs) -> list[list[Generation]]:
        """Generations at every budget from one thinking pass (``force_budgets``)."""
        return generate_at_budgets(self.model, self.tokenizer, prompts, budgets, fmt, **kwargs)


class VLLMEngine:
    """vLLM generation with budget forcing. Build it in a ``if __name__ == "__main__"`` script: vLLM spawns workers.

    Args:
        path: model folder or hub id (pruned checkpoints load as-is: their configs are consistent).
        tensor_parallel_size: GPUs to shard one model over.
    """

    is_engine = True

    def __init__(
        self, path: str, tokenizer, dtype: str = "auto", tensor_parallel_size: int = 1, seed: int = 0, **llm_kwargs
    ):
        from transformers import AutoConfig
        from vllm import LLM

        self.tokenizer = tokenizer
        self.config = AutoConfig.from_pretrained(path)
        if not has_gpu() and not {"gpu_memory_utilization", "kv_cache_memory_bytes"} & set(llm_kwargs):
            llm_kwargs["kv_cache_memory_bytes"] = cpu_kv_cache_bytes(
                self.config, llm_kwargs.get("max_model_len"), dtype
            )
        self.llm = LLM(
            model=str(path),
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            enable_prefix_caching=True,
            **llm_kwargs,
        )
        self.eos_ids = {self.tokenizer.eos_token_id} | set(_generation_eos(path))

    def generate(self, prompts, budget, fmt: ThinkFormat, **kwargs) -> list[Generation]:
        return self.generate_budgets(prompts, [budget], fmt, **kwargs)[0]

    def generate_budgets(
        self,
        prompts,
        budgets,
        fmt: ThinkFormat,
        answer_max_tokens: int = 16,
        num_waits: int = 0,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        keys: list[int] | None = None,
        **_,
    ) -> list[list[Generation]]:
        """Generations at every budget from one thinking pass (``force_budgets``).

        A request's seed comes from its sequence's key, and vLLM's seeded sampling depends on the seed and the
        number of tokens the request has written: the thinking request and each answer request start where a
        per-budget generation's would, so one pass writes what per-budget generation writes.
        """
        from vllm import SamplingParams, TokensPrompt

        def run(seqs, rooms, stops, run_keys):
            # One request per sequence, each with its own room and a seed from its own key, so a sample does not
            # depend on what else is in the batch.
            params = [
                SamplingParams(
                    max_tokens=room,
                    temperature=temperature,
                    top_p=top_p if temperature > 0 else 1.0,
                    seed=key % (1 << 31),
                    stop_token_ids=sorted(stops),
                    skip_special_tokens=False,
                )
                for room, key in zip(rooms, run_keys)
            ]
            outs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=False)
            return [cut(list(o.outputs[0].token_ids), room, stops) for o, room in zip(outs, rooms)]

        keys = keys if keys is not None else default_keys(prompts, seed)
        return force_budgets(
            run, self.tokenizer, self.eos_ids, prompts, budgets, fmt, answer_max_tokens, num_waits, keys
        )


def has_gpu() -> bool:
    import torch

    return torch.cuda.is_available()


def cpu_kv_cache_bytes(config, max_model_len: int | None, dtype: str, sequences: int = 16) -> int:
    """KV-cache memory for vLLM on CPU, sized from the model and the machine rather than a fraction of RAM.

    vLLM-CPU reads ``gpu_memory_utilization`` as a fraction of the machine's RAM that must also hold the weights
    and everything else in the process: on a machine whose page cache is warm, 0.1 came out as a negative KV budget
    ("less than requested memory for kv (-0.36/1.15 GiB)") and the engine refused to start. This asks for room for
    ``sequences`` full-length sequences, and never more than a quarter of the memory available now.
    """
    import psutil

    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    heads = getattr(text, "num_key_value_heads", None) or text.num_attention_heads
    head_dim = getattr(text, "head_dim", None) or text.hidden_size // text.num_attention_heads
    width = 4 if dtype in ("float32", "auto") else 2
    length = max_model_len or min(getattr(text, "max_position_embeddings", 4096), 8192)
    per_token = 2 * text.num_hidden_layers * heads * head_dim * width
    return int(min(per_token * length * sequences, psutil.virtual_memory().available // 4))


def _generation_eos(path) -> list[int]:
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json: the tokenizer's eos is all there is
        return []
    return [eos] if isinstance(eos, int) else list(eos or [])
