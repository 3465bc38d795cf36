"""Budget forcing on real-length outputs (a scripted engine) and on a real model (batch invariance, keyed sampling).

The scripted engine replays continuations of the length real reasoning models write: thousands of thinking tokens,
then hundreds of answer tokens before the boxed answer. Each test here is a defect that was found, as its example.
"""

import json

import pytest
import torch
from chat_tokenizer import chat_tokenizer
from tiny_models import tiny_model

from lprecover.evaluation.budget_forcing import (
    ThinkFormat,
    budget_forced_generate,
    cut,
    generate_at_budgets,
    prompt_ids,
    sample_tokens,
    sampling_key,
    think_format,
    uniform,
)
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.run import run_eval
from lprecover.evaluation.scoring import extract_answer
from lprecover.evaluation.scripted import Script, ScriptedEngine

THINK = ThinkFormat("<think>", "</think>", "", "\n\nFinal Answer:")
S1 = ThinkFormat("<|im_start|>think", "<|im_start|>", "answer", "\nFinal Answer:")
PLAIN = ThinkFormat("", None, "", "\n\nFinal Answer:")
QUESTION = "Janet's ducks lay 16 eggs per day. She eats three and bakes with four. She sells the rest at $2. Dollars?"


@pytest.fixture(scope="module")
def tok():
    return chat_tokenizer()


def words(tok, n_tokens: int, sentence: str) -> str:
    """Text of at least ``n_tokens`` tokens, made of ``sentence`` repeated (real traces repeat themselves too)."""
    text = ""
    while len(tok.encode(text, add_special_tokens=False)) < n_tokens:
        text += sentence + " "
    return text


def long_script(tok) -> Script:
    thinking = words(tok, 3000, "Let me think about this step by step, and check it again.")
    answer = (
        words(tok, 400, "So she sells 16 - 3 - 4 = 9 eggs and makes 9 * 2 dollars.") + "The answer is \\boxed{18}."
    )
    return Script([thinking], answer)


def test_cut_keeps_only_what_fits_the_room():
    assert cut([5, 6, 9], 2, {9}) == ([5, 6], None)  # the stop came after the room ran out: it does not count
    assert cut([5, 9, 6], 2, {9}) == ([5], 9)
    assert cut([9], 1, {9}) == ([], 9)
    assert cut([5, 6], 4, {9}) == ([5, 6], None)


def test_real_length_answers_are_scored_whole(tok, tmp_path):
    """A 400-token solution after thinking: the old 64-token answer cap scored it wrong, with no extraction failure."""
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": QUESTION, "answer": "9 eggs, 9 * 2 = 18\n#### 18"}) + "\n")
    engine = ScriptedEngine(tok, {QUESTION: long_script(tok)})
    base = dict(tasks=["gsm8k"], paths={"gsm8k": str(data)}, budgets=[1024, 4096], parallel=False, bootstrap=10)
    full = run_eval(engine, tok, EvalConfig(**base), tmp_path / "full")
    records = {r["budget"]: r for r in map(json.loads, (tmp_path / "full" / "samples.jsonl").read_text().splitlines())}
    forced, own = records[1024], records[4096]
    assert forced["truncated"] and forced["thinking_tokens"] == 1024
    assert forced["response"].startswith("\n\nFinal Answer:")  # the cue is part of what is scored
    assert not own["truncated"] and 3000 <= own["thinking_tokens"] < 4096 and "Final Answer" not in own["response"]
    for r in (forced, own):
        assert r["answer_tokens"] > 400 and not r["answer_truncated"] and r["extracted"] == "18" and r["correct"]
    assert full["summary"]["gsm8k"]["answer_truncation_rate"] == 0.0

    capped = run_eval(engine, tok, EvalConfig(**base, answer_max_tokens=64), tmp_path / "capped")
    rows = [json.loads(line) for line in (tmp_path / "capped" / "samples.jsonl").read_text().splitlines()]
    assert all(r["answer_tokens"] == 64 and r["answer_truncated"] and not r["correct"] for r in rows)
    assert capped["summary"]["gsm8k"]["answer_truncation_rate"] == 1.0
    assert capped["curves"]["sequential"]["gsm8k"]["accuracy"] == [0.0, 0.0]


@pytest.mark.parametrize("fmt", [THINK, S1, PLAIN], ids=["think-tag", "s1", "no-delimiters"])
def test_every_format_is_scored_on_what_the_model_was_made_to_say(tok, fmt):
    """The forced cue is scored: '...9 * 2' + ' 18' held no answer when the cue was left out of the scored text."""
    script = Script([words(tok, 200, "She sells 9 eggs at 2 dollars each, so 9 * 2")], " 18")
    engine = ScriptedEngine(tok, {QUESTION: script})
    prompt = prompt_ids(tok, QUESTION, fmt)
    forced = engine.generate([prompt], 50, fmt, answer_max_tokens=32)[0]
    assert forced.truncated and forced.thinking_tokens == 50 and forced.answer == " 18"
    assert "Final Answer: 18" in forced.response and extract_answer(forced.response, "gsm8k") == "18"
    if fmt is S1:  # s1's fork appends exactly this after a forced close
        assert "<|im_start|>answer\nFinal Answer: 18" in forced.raw
    if fmt is PLAIN:  # without delimiters the model answers in its response: all of it is scored
        assert forced.response.startswith(forced.thinking)

    own = engine.generate([prompt], 1000, fmt, answer_max_tokens=32)[0]
    assert not own.truncated and "Final Answer" not in own.raw
    if fmt is S1:  # a close of its own also opens the answer
        assert own.raw.endswith("<|im_start|>answer 18")


def test_waits_extend_thinking_and_a_later_cutoff_still_gets_the_cue(tok):
    segments = [words(tok, 40, f"Part {i} of the argument.") for i in range(3)]
    engine = ScriptedEngine(tok, {QUESTION: Script(segments, " 18")})
    prompt = prompt_ids(tok, QUESTION, THINK)
    n = [len(tok.encode(s, add_special_tokens=False)) for s in segments]

    g = engine.generate([prompt], 1000, THINK, answer_max_tokens=8, num_waits=2)[0]
    assert g.waits == 2 and not g.truncated and g.thinking == segments[0] + "Wait" + segments[1] + "Wait" + segments[2]
    alternating = ThinkFormat(THINK.open, THINK.close, "", THINK.answer_prefix, ("Wait", "Hmm"))
    g = engine.generate([prompt], 1000, alternating, answer_max_tokens=8, num_waits=2)[0]
    assert g.thinking == segments[0] + "Wait" + segments[1] + "Hmm" + segments[2]

    # One Wait, then the budget runs out inside the second segment: the close is forced, so the cue must follow it
    # (the old loop remembered the first, voluntary close and appended no cue).
    budget = n[0] + 2 + 5
    g = engine.generate([prompt], budget, THINK, answer_max_tokens=8, num_waits=2)[0]
    assert g.waits == 1 and g.truncated and g.thinking_tokens == budget
    assert g.raw.endswith("</think>\n\nFinal Answer: 18") and extract_answer(g.response, "gsm8k") == "18"


def test_wait_text_reaches_the_model(tok, tmp_path):
    """eval.wait_text used to stop at the config: every run waited with 'Wait'."""
    segments = [words(tok, 20, "First try."), words(tok, 20, "Second try.")]
    data = tmp_path / "gsm8k.jsonl"
    data.write_text(json.dumps({"question": QUESTION, "answer": "#### 18"}) + "\n")
    engine = ScriptedEngine(tok, {QUESTION: Script(segments, " \\boxed{18}")})
    cfg = EvalConfig(
        tasks=["gsm8k"], paths={"gsm8k": str(data)}, budgets=[200], parallel=False, num_waits=1, wait_text="Hmm"
    )
    run_eval(engine, tok, cfg, tmp_path / "o")
    record = json.loads((tmp_path / "o" / "samples.jsonl").read_text())
    assert "Hmm" in record["output"] and "Wait" not in record["output"] and record["waits"] == 1


def test_think_format_cue_follows_the_family(tok, organism_tokenizer):
    from lprecover.modeling import ModelConfig

    assert think_format(tok).answer_prefix == "\n\nFinal Answer:"  # s1's cue after a forced </think>
    # The organism's registered traits: trained to answer at once, so no cue.
    assert think_format(organism_tokenizer, default_answer_prefix="").answer_prefix == ""
    s1 = think_format(
        tok,
        ModelConfig(
            think_open="<|im_start|>think", think_close="<|im_start|>", answer_open="answer", answer_prefix=""
        ),
    )
    assert (s1.open, s1.close, s1.answer_open, s1.answer_prefix) == ("<|im_start|>think", "<|im_start|>", "answer", "")


def test_keyed_sampling_draws_by_inverse_cdf():
    logits = torch.tensor([0.5, 0.3, 0.2]).log().repeat(4, 1)
    u = torch.tensor([0.1, 0.6, 0.85, 0.99])
    assert sample_tokens(logits, u, 1.0, 1.0).tolist() == [0, 1, 2, 2]
    # top_p 0.7 keeps {0, 1} (mass before token 2 is 0.8): renormalised 0.625 / 0.375.
    assert sample_tokens(logits[:2], torch.tensor([0.62, 0.63]), 1.0, 0.7).tolist() == [0, 1]
    # T = 2: p ~ sqrt(p) -> 0.4155, 0.3218, 0.2628.
    assert sample_tokens(logits[:2], torch.tensor([0.41, 0.42]), 2.0, 1.0).tolist() == [0, 1]
    draws = [uniform(sampling_key(0, "t", "p", 0), pos) for pos in range(20000)]
    assert all(0 <= d < 1 for d in draws) and abs(sum(draws) / len(draws) - 0.5) < 0.01
    counts = torch.bincount(sample_tokens(logits[:1].repeat(20000, 1), torch.tensor(draws), 1.0, 1.0), minlength=3)
    assert (counts / 20000 - torch.tensor([0.5, 0.3, 0.2])).abs().max() < 0.015


@pytest.fixture(scope="module")
def closing_model(organism_tokenizer):
    """A tiny random Qwen3 that closes its thinking now and then, so sequences stop at different times."""
    return _closing(tiny_model("qwen3"), organism_tokenizer)


def _closing(model, organism_tokenizer):
    """``model``, made to close its thinking now and then.

    By a pseudo-random function of the hidden state, the close token is put well above the best other token (at
    about one position in ten: greedy decoding and sampling close there) or just below it (sampling may close).
    """
    close = organism_tokenizer.convert_tokens_to_ids("</think>")

    def sometimes_close(module, args, logits):
        hit = (args[0][..., :4].sum(-1) * 37).sin() > 0.8
        logits[..., close] = logits.max(-1).values + torch.where(hit, 6.0, -0.5)
        return logits

    model.lm_head.register_forward_hook(sometimes_close)
    return model


@pytest.mark.parametrize("temperature, num_waits", [(0.0, 0), (1.0, 0), (1.0, 2)])
def test_records_do_not_depend_on_batch_size(closing_model, organism_tokenizer, temperature, num_waits):
    """Batch size 1 and 16 write the same generations: stops past a sequence's own room, and one shared sampler,
    used to make a sequence's text depend on the rest of its batch."""
    tok = organism_tokenizer
    problems = ["1a+2", "3a*4b-1", "2a-3b+3c*2", "4a", "1a-1b-1c-1d", "3b*3", "2a+2b", "4a*4b*4c"] * 2
    prompts = [prompt_ids(tok, p, ThinkFormat()) for p in problems]
    kwargs = dict(answer_max_tokens=3, num_waits=num_waits, temperature=temperature, top_p=0.9, seed=3)
    single = budget_forced_generate(closing_model, tok, prompts, 8, ThinkFormat(), batch_size=1, **kwargs)
    batched = budget_forced_generate(closing_model, tok, prompts, 8, ThinkFormat(), batch_size=16, **kwargs)
    assert [vars(g) for g in single] == [vars(g) for g in batched]
    lengths = {g.thinking_tokens for g in batched}
    assert len(lengths) > 2 and any(g.truncated for g in batched) and not all(g.truncated for g in batched)
    if num_waits:
        assert any(g.waits for g in batched)
    if temperature:  # repeated prompts draw their own samples (their repeat index is part of the key)
        assert any(a.raw != b.raw for a, b in zip(batched[:8], batched[8:]))
    else:
        assert [g.raw for g in batched[:8]] == [g.raw for g in batched[8:]]


def test_sampled_thinking_at_a_budget_is_the_prefix_of_a_larger_budget(closing_model, organism_tokenizer):
    tok = organism_tokenizer
    prompts = [prompt_ids(tok, p, ThinkFormat()) for p in ["1a+2", "3a*4b-1", "2a-3b+3c*2", "4a*4b*4c"]]
    kwargs = dict(answer_max_tokens=2, temperature=1.0, top_p=1.0, seed=5)
    small = budget_forced_generate(closing_model, tok, prompts, 6, ThinkFormat(), **kwargs)
    large = budget_forced_generate(closing_model, tok, prompts, 24, ThinkFormat(), **kwargs)
    for s, g in zip(small, large):
        assert g.thinking.startswith(s.thinking) if s.truncated else g.thinking == s.thinking


def _same(one, each):
    return [[vars(g) for g in gens] for gens in one] == [[vars(g) for g in gens] for gens in each]


def test_one_pass_takes_each_budget_from_the_largest_budgets_thinking(tok):
    """Hand-computed: segments of n0, n1, n2 tokens, "Wait" (2 tokens) after each, two waits allowed.

    At n0 + 1 the wait does not fit (n0 + 2 >= budget), so a generation at that budget ends its thinking where the
    model did, unforced, though the largest budget's thinking has a wait there. At n0 + 2 + 5 the wait fits and the
    budget runs out 5 tokens into the second segment. At 1000 both waits are used and the model closes itself.
    """
    segments = [words(tok, 40, f"Part {i} of the argument.") for i in range(3)]
    engine = ScriptedEngine(tok, {QUESTION: Script(segments, " 18")})
    prompt = prompt_ids(tok, QUESTION, THINK)
    n = [len(tok.encode(s, add_special_tokens=False)) for s in segments]
    budgets = [n[0] + 1, n[0] + 2 + 5, 1000]
    one = engine.generate_budgets([prompt], budgets, THINK, answer_max_tokens=8, num_waits=2)
    each = [engine.generate([prompt], b, THINK, answer_max_tokens=8, num_waits=2) for b in budgets]
    assert _same(one, each)
    own, cut_off, full = (gens[0] for gens in one)
    assert (own.thinking, own.waits, own.truncated, own.thinking_tokens) == (segments[0], 0, False, n[0])
    assert own.raw.endswith("</think> 18") and "Final Answer" not in own.raw  # its own close: no cue
    assert (cut_off.waits, cut_off.truncated, cut_off.thinking_tokens) == (1, True, n[0] + 7)
    assert cut_off.raw.endswith("</think>\n\nFinal Answer: 18")
    assert full.waits == 2 and not full.truncated and full.thinking == "Wait".join(segments)


@pytest.mark.parametrize("temperature, num_waits", [(0.0, 0), (1.0, 0), (0.0, 2), (1.0, 2)])
def test_one_pass_writes_what_each_budget_writes_alone(closing_model, organism_tokenizer, temperature, num_waits):
    """Thinking generated once to the largest budget, each smaller budget taking its prefix, gives exactly the
    generations of each budget run on its own: greedy and keyed sampling, with and without wait strings."""
    tok = organism_tokenizer
    problems = ["1a+2", "3a*4b-1", "2a-3b+3c*2", "4a", "1a-1b-1c-1d", "3b*3", "2a+2b", "4a*4b*4c"] * 2
    prompts = [prompt_ids(tok, p, ThinkFormat()) for p in problems]
    budgets = [2, 3, 5, 8, 13, 24]
    kwargs = dict(answer_max_tokens=3, num_waits=num_waits, temperature=temperature, top_p=0.9, seed=3, batch_size=5)
    one = generate_at_budgets(closing_model, tok, prompts, budgets, ThinkFormat(), **kwargs)
    each = [budget_forced_generate(closing_model, tok, prompts, b, ThinkFormat(), **kwargs) for b in budgets]
    assert _same(one, each)
    top = one[-1]
    assert any(g.truncated for g in one[0]) and not all(g.truncated for g in top)
    # Some generation at a smaller budget ended on the model's own close with fewer tokens than the budget.
    assert any(not g.truncated and g.thinking_tokens < b for b, gens in zip(budgets[:-1], one[:-1]) for g in gens)
    if num_waits:  # the edge: a wait the largest budget had room for, but a smaller budget did not
        assert any(not g.truncated and g.waits < t.waits for gens in one[:-1] for g, t in zip(gens, top))


def test_one_pass_generates_the_thinking_once(organism_tokenizer):
    """A model that thinks to every budget, at doubling budgets 4..32: per budget, thinking takes 4 + 8 + 16 + 32 =
    60 forward passes and each budget's answer phase 2 more (68); in one pass, thinking takes 32 (40)."""
    tok = organism_tokenizer
    model = tiny_model("qwen3")
    never = [tok.convert_tokens_to_ids("</think>"), tok.eos_token_id]

    def think_on(module, args, logits):
        logits[..., never] = -1e4
        return logits

    model.lm_head.register_forward_hook(think_on)
    prompts = [prompt_ids(tok, p, ThinkFormat()) for p in ["1a+2", "3a*4b-1", "2a-3b+3c*2", "4a*4b*4c"]]
    budgets = [4, 8, 16, 32]
    passes = []
    model.lm_head.register_forward_hook(lambda m, a, out: passes.append(1))
    one = generate_at_budgets(model, tok, prompts, budgets, ThinkFormat(), answer_max_tokens=2)
    in_one = len(passes)
    passes.clear()
    each = [budget_forced_generate(model, tok, prompts, b, ThinkFormat(), answer_max_tokens=2) for b in budgets]
    assert _same(one, each) and all(g.truncated for gens in one for g in gens)
    assert (in_one, len(passes)) == (40, 68)


@pytest.mark.parametrize("cue", ["", "\n\nFinal Answer:"], ids=["no-cue", "long-cue"])
@pytest.mark.parametrize("temperature", [0.0, 1.0], ids=["greedy", "sampled"])
@pytest.mark.parametrize("family", ["qwen3", "llama", "mistral"])
def test_answers_continue_the_thinking_cache_and_write_what_a_full_reread_writes(
    organism_tokenizer, family, temperature, cue
):
    """Answer phases read the thinking pass's KV cache and feed the model only their last 1 + len(close + cue)
    tokens, and write what re-reading each answer's whole prompt and thinking writes. Mistral's sliding-window cache
    cannot be continued that way: it re-reads.

    The long cue is 14 of the organism tokenizer's tokens: a model that closed its thinking at once has a prompt and
    thinking shorter than its share of those (the failing example: "cannot continue its thinking's cache")."""
    tok = organism_tokenizer
    fmt = ThinkFormat(answer_prefix=cue)
    new = 2 + len(tok.encode(cue, add_special_tokens=False))
    model = _closing(tiny_model(family), tok)
    widths = []
    model.get_input_embeddings().register_forward_pre_hook(lambda m, args: widths.append(args[0].shape[1]))
    problems = ["1a+2", "3a*4b-1", "2a-3b+3c*2", "4a", "1a-1b-1c-1d", "3b*3", "2a+2b", "4a*4b*4c"]
    prompts = [prompt_ids(tok, p, fmt) for p in problems]
    budgets = [3, 6, 12, 24]
    kwargs = dict(answer_max_tokens=3, temperature=temperature, top_p=0.9, seed=1, batch_size=5)
    runs = {}
    for reuse in (True, False):
        widths.clear()
        runs[reuse] = generate_at_budgets(model, tok, prompts, budgets, fmt, reuse_cache=reuse, **kwargs)
        prefills = {w for w in widths if w > 1}  # the two batches' prompts, and every answer phase's input
        continued = prefills == {new, max(map(len, prompts[:5])), max(map(len, prompts[5:]))}
        assert continued == (reuse and family != "mistral"), (family, reuse, sorted(prefills))
    assert _same(runs[True], runs[False])
    gens = [g for gens in runs[True] for g in gens]
    assert any(g.truncated for g in gens) and any(not g.truncated for g in gens)
    if cue:
        short = [not g.truncated and len(p) + g.thinking_tokens < new - 1 for p, g in zip(prompts * 4, gens)]
        assert any(short)
