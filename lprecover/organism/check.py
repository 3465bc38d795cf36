"""Measure the organism's test-time scaling: accuracy against the thinking budget, per chain length."""

from lprecover.evaluation.budget_forcing import ThinkFormat, generate_at_budgets, prompt_ids
from lprecover.organism.task import N_FACTS, TOKENS_PER_STEP, facts, make_problems

EVAL_SEED = 12345  # evaluation problems come from the held-out eighth (``task.held_out``) no training set holds


def default_budgets(max_chain: int = 8, min_chain: int = 1) -> list[int]:
    """Thinking budgets, in whole steps, from one step short of the shortest chain to the longest: where accuracy can
    rise. Five at most: for chains 1-8, steps 1, 2, 4, 6 and 8; for 5-8, every step from 4 to 8 (a teacher that
    needs its whole trace is right on a quarter more of the chains at each)."""
    lo = max(1, min_chain - 1)
    steps = sorted({lo, min(lo + 1, max_chain), (lo + max_chain) // 2, (lo + 3 * max_chain) // 4, max_chain})
    return [s * TOKENS_PER_STEP for s in steps]


def sequential_curve(
    model, tokenizer, n: int = 400, min_chain: int = 1, max_chain: int = 8, budgets=None, seed=EVAL_SEED
):
    """Greedy budget-forced accuracy on ``n`` held-out problems.

    Returns:
        ``{"budget": [...], "accuracy": [...], "by_chain": {k: [...]}}``, accuracies aligned with the budgets.
    """
    budgets = budgets or default_budgets(max_chain)
    problems = make_problems(n, min_chain, max_chain, seed, split="eval")
    prompts = [prompt_ids(tokenizer, p.problem, ThinkFormat()) for p in problems]
    curve = {"budget": list(budgets), "accuracy": [], "by_chain": {k: [] for k in range(min_chain, max_chain + 1)}}
    for gens in generate_at_budgets(model, tokenizer, prompts, budgets, batch_size=256):
        hits = [g.answer.strip() == p.answer for g, p in zip(gens, problems)]
        curve["accuracy"].append(sum(hits) / len(hits))
        for k in curve["by_chain"]:
            ks = [h for h, p in zip(hits, problems) if p.steps == k]
            curve["by_chain"][k].append(sum(ks) / len(ks))
    return curve


def facts_accuracy(model, tokenizer, n: int = N_FACTS) -> float:
    """Greedy accuracy on the ``n`` memorised facts the teacher was trained on (``task.facts(n)``; default 100),
    answered with no thinking (a budget of one step is room enough)."""
    known = facts(n)
    prompts = [prompt_ids(tokenizer, f.prompt, ThinkFormat()) for f in known]
    (gens,) = generate_at_budgets(model, tokenizer, prompts, [TOKENS_PER_STEP], batch_size=256)
    return sum(g.answer.strip() == f.answer for g, f in zip(gens, known)) / len(known)
