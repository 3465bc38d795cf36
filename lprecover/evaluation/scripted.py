"""A scripted engine: fixed continuations replayed through the real budget-forcing loop, without a model.

Real reasoning models think for thousands of tokens and then write hundreds more before their boxed answer. Tests
of budget forcing, answer capping and answer extraction need outputs of that length and shape, and a tiny random
model does not write them. ``ScriptedEngine`` behaves like a model whose every continuation is written down:

- while thinking it writes the problem's thinking segments in turn, each ended by the end-of-thinking delimiter
  (for formats without one, by end of turn); when budget forcing replaces that end with a wait string, it goes on
  with the next segment, and with none left it ends at once;
- once its thinking is closed (by itself, or for it with the answer cue), it writes the problem's answer and ends
  its turn.

Rooms and stops are enforced by the same ``cut`` the real engines use, so the records it produces go through every
line of ``force_budgets`` and of the evaluation that scores them.
"""

from dataclasses import dataclass

from lprecover.evaluation.budget_forcing import Generation, ThinkFormat, cut, default_keys, force_budgets, text_ids


@dataclass
class Script:
    """What the scripted model writes for one problem.

    Args:
        thinking: thinking segments; the model ends its thinking after each, and a wait string moves it to the next.
        answer: what it writes after its thinking is closed, up to end of turn.
    """

    thinking: list[str]
    answer: str


class ScriptedEngine:
    """An engine (``generate`` as ``HFEngine``'s) that replays ``scripts``: ``{problem text: Script}``."""

    is_engine = True

    def __init__(self, tokenizer, scripts: dict[str, Script], config=None):
        self.tokenizer, self.scripts, self.config = tokenizer, scripts, config
        self.eos_ids = {tokenizer.eos_token_id}

    def _script_for(self, prompt: list[int]) -> Script:
        text = self.tokenizer.decode(prompt)
        found = [s for problem, s in self.scripts.items() if problem in text]
        if len(found) != 1:
            raise KeyError(f"{len(found)} scripts match the prompt {text[:80]!r}: give one per problem.")
        return found[0]

    def _continuation(self, script: Script, written: list[int], fmt: ThinkFormat) -> list[int]:
        tok = self.tokenizer
        end = [tok.convert_tokens_to_ids(fmt.close)] if fmt.close else [tok.eos_token_id]
        cue = text_ids(tok, fmt.answer_prefix)
        answer = text_ids(tok, script.answer) + [tok.eos_token_id]
        closed = (fmt.close and end[0] in written) or (cue and written[len(written) - len(cue) :] == cue)
        if closed:
            return answer
        waits = [text_ids(tok, w) for w in fmt.wait]
        pos = 0
        for j, segment in enumerate(text_ids(tok, s) for s in script.thinking):
            if written[pos : pos + len(segment)] != segment[: len(written) - pos]:
                raise ValueError("The sequence left the script: budget forcing added something it did not expect.")
            if len(written) - pos < len(segment):
                return segment[len(written) - pos :] + end
            pos += len(segment)
            wait = waits[j % len(waits)]
            if written[pos : pos + len(wait)] != wait:
                raise ValueError("The sequence left the script after a segment without a wait string.")
            pos += len(wait)
        return end  # no segment left: the model ends its thinking at once

    def generate(self, prompts, budget, fmt: ThinkFormat, **kwargs) -> list[Generation]:
        return self.generate_budgets(prompts, [budget], fmt, **kwargs)[0]

    def generate_budgets(
        self,
        prompts,
        budgets,
        fmt: ThinkFormat,
        answer_max_tokens: int = 16,
        num_waits: int = 0,
        seed: int = 0,
        keys: list[int] | None = None,
        **_,
    ) -> list[list[Generation]]:
        scripts = {tuple(p): self._script_for(p) for p in prompts}

        def run(seqs, rooms, stops, run_keys):
            out = []
            for seq, room in zip(seqs, rooms):
                prompt = next(p for p in scripts if tuple(seq[: len(p)]) == p)
                written = seq[len(prompt) :]
                out.append(cut(self._continuation(scripts[prompt], written, fmt), room, stops))
            return out

        keys = keys if keys is not None else default_keys(prompts, seed)
        return force_budgets(
            run, self.tokenizer, self.eos_ids, prompts, budgets, fmt, answer_max_tokens, num_waits, keys
        )
