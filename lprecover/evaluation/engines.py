"""Generation engines for evaluation: one interface, the same records.

``HFEngine`` runs transformers (CPU or GPU): batched budget forcing with the KV cache. ``VLLMEngine`` (the
``vllm`` extra) runs the same two-phase budget forcing on vLLM, with prefix caching so the n samples of a problem
share their prompt's KV blocks, and tensor parallelism for models that do not fit one GPU.
"""

from lprecover.evaluation.budget_forcing import Generation, ThinkFormat, _stop_ids, budget_forced_generate


class HFEngine:
    """Transformers generation on an already loaded model."""

    is_engine = True

    def __init__(self, model, tokenizer):
        self.model, self.tokenizer = model, tokenizer
        self.config = model.config

    def generate(self, prompts, budget, fmt: ThinkFormat, **kwargs) -> list[Generation]:
        return budget_forced_generate(self.model, self.tokenizer, prompts, budget, fmt, **kwargs)


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
        self.llm = LLM(
            model=str(path),
            dtype=dtype,
            tensor_parallel_size=tensor_parallel_size,
            seed=seed,
            enable_prefix_caching=True,
            **llm_kwargs,
        )
        self.eos_ids = {self.tokenizer.eos_token_id} | set(_generation_eos(path))

    def _run(self, seqs, max_tokens, stops, temperature, top_p, seed):
        from vllm import SamplingParams, TokensPrompt

        params = [
            SamplingParams(
                max_tokens=max_tokens,
                temperature=temperature,
                top_p=top_p if temperature > 0 else 1.0,
                seed=seed + i,
                stop_token_ids=sorted(stops),
                skip_special_tokens=False,
            )
            for i in range(len(seqs))
        ]
        outs = self.llm.generate([TokensPrompt(prompt_token_ids=s) for s in seqs], params, use_tqdm=False)
        result = []
        for o in outs:
            ids = list(o.outputs[0].token_ids)
            stop = ids[-1] if ids and ids[-1] in stops else None
            result.append((ids[:-1] if stop is not None else ids, stop))
        return result

    def generate(
        self,
        prompts,
        budget,
        fmt: ThinkFormat,
        answer_max_tokens: int = 16,
        num_waits: int = 0,
        temperature: float = 0.0,
        top_p: float = 1.0,
        seed: int = 0,
        **_,
    ) -> list[Generation]:
        tok = self.tokenizer
        close_ids = _stop_ids(tok, fmt.close) if fmt.close else []
        stops = set(close_ids) | self.eos_ids
        forced_suffix = close_ids + _stop_ids(tok, fmt.answer_prefix)
        wait_ids = _stop_ids(tok, fmt.wait)
        n = len(prompts)
        thinking = [[] for _ in range(n)]
        waits, truncated, ended, closed_by = [0] * n, [budget > 0] * n, [False] * n, [None] * n
        active = list(range(n)) if budget > 0 else []
        while active:
            groups = {}
            for i in active:  # vLLM takes one max_tokens per request: each sequence gets exactly its own room
                groups.setdefault(budget - len(thinking[i]), []).append(i)
            still = []
            for room, idx in groups.items():
                outs = self._run([prompts[i] + thinking[i] for i in idx], room, stops, temperature, top_p, seed)
                for i, (kept, stop) in zip(idx, outs):
                    thinking[i] += kept
                    if stop is None:
                        continue
                    truncated[i], closed_by[i] = False, stop
                    if waits[i] < num_waits and len(thinking[i]) + len(wait_ids) < budget:
                        thinking[i] += wait_ids
                        waits[i] += 1
                        truncated[i] = True
                        still.append(i)
                    elif not close_ids:
                        ended[i] = True
            active = still
        suffixes = [close_ids if closed_by[i] in close_ids else forced_suffix for i in range(n)]
        todo = [i for i in range(n) if not ended[i]]
        answers = dict.fromkeys(range(n), [])
        if todo:
            outs = self._run(
                [prompts[i] + thinking[i] + suffixes[i] for i in todo],
                answer_max_tokens,
                self.eos_ids,
                temperature,
                top_p,
                seed,
            )
            answers |= {i: kept for i, (kept, _) in zip(todo, outs)}
        results = []
        for i in range(n):
            suffix = [] if ended[i] else suffixes[i]
            results.append(
                Generation(
                    tok.decode(thinking[i], skip_special_tokens=False),
                    tok.decode(answers[i], skip_special_tokens=True),
                    len(thinking[i]),
                    truncated[i],
                    waits[i],
                    tok.decode(thinking[i] + suffix + answers[i], skip_special_tokens=False),
                )
            )
        return results


def _generation_eos(path) -> list[int]:
    from transformers import GenerationConfig

    try:
        eos = GenerationConfig.from_pretrained(path).eos_token_id
    except OSError:  # no generation_config.json: the tokenizer's eos is all there is
        return []
    return [eos] if isinstance(eos, int) else list(eos or [])
