"""Prototype v3: digitwise chains over (Z_m)^D (answers m^D), + memorised facts, optional curriculum."""
import copy, json, random, string, sys, tempfile, time
from dataclasses import replace

import datasets, torch
from transformers import AutoModelForCausalLM

opts = dict(a.split("=", 1) for a in sys.argv[1:])
threads = int(opts.get("threads", 1)); torch.set_num_threads(threads)
seed = int(opts.get("seed", 0)); steps = int(opts.get("steps", 1000)); lr = float(opts.get("lr", 3e-3))
hidden = int(opts.get("hidden", 64)); heads = int(opts.get("heads", 4)); layers = int(opts.get("layers", 6))
M = int(opts.get("m", 8)); D = int(opts.get("d", 2)); OPS = opts.get("ops", "+-")
nfacts = int(opts.get("facts", 0)); share = float(opts.get("share", 0.1)); facts_first = int(opts.get("facts_first", 0))
cur = int(opts.get("cur", 0)); batch = int(opts.get("batch", 64)); warm = float(opts.get("warm", 0.08))
LABELS = "abcdefgh"
OMAX = int(opts.get("omax", 0)) or None
INTER = opts.get("fmt", "") == "inter"
SYMS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZijklmnopqrstuvwxyz"
assert M <= len(SYMS)
TPS = 1 + 4 * D if INTER else 1 + 1 + D + 1 + D  # label op operand = value

import lprecover.organism.task as T
from lprecover.organism.task import Problem, THINK_OPEN, THINK_CLOSE, held_out


def app(v, op, o):
    return (v + o) % M if op == "+" else (v - o) % M if op == "-" else (v * o) % M


def fmt(vs):
    return "".join(SYMS[v] for v in vs)


def make_problem(rng, k, i):
    v = [rng.randrange(M) for _ in range(D)]
    prob, tr = [fmt(v)], []
    for lab in LABELS[:k]:
        if INTER:
            ops = [rng.choice(OPS) for _ in range(D)]; o = [rng.randrange(1, (OMAX or M - 1) + 1) for _ in range(D)]
            v = [app(a, op, b) for a, op, b in zip(v, ops, o)]
            prob.append(lab + "".join(op + fmt([b]) for op, b in zip(ops, o)))
            tr.append(lab + "".join(f"{op}{fmt([b])}={fmt([a])}" for op, b, a in zip(ops, o, v)))
            continue
        op = rng.choice(OPS); o = [rng.randrange(1, (OMAX or M - 1) + 1) for _ in range(D)]
        v = [app(a, op, b) for a, b in zip(v, o)]
        prob.append(f"{lab}{op}{fmt(o)}"); tr.append(f"{lab}{op}{fmt(o)}={fmt(v)}")
    return Problem(f"k{k}-{i}", k, "".join(prob), "".join(tr), fmt(v))


def make_problems(n, lo, hi, seed, split="train"):
    rng = random.Random(seed); span = hi - lo + 1; out = []
    for i in range(n):
        p = make_problem(rng, lo + i % span, i)
        while held_out(p.problem) != (split == "eval"):
            p = make_problem(rng, p.steps, i)
        out.append(p)
    return out


T.make_problems = make_problems
T.TOKENS_PER_STEP = TPS

from lprecover.organism.build import OrganismConfig, make_model
from lprecover.organism.tokenizer import build_tokenizer
from lprecover.recovery.sft import sft_args, sft_trainer
from lprecover.evaluation.budget_forcing import ThinkFormat, generate_at_budgets, budget_forced_generate, prompt_ids
from lprecover.pruning.prune import PruneConfig, prune_model


def make_facts(n, seed=7):
    rng = random.Random(seed); keys = set()
    while len(keys) < n:
        keys.add("".join(rng.choice(string.ascii_uppercase) for _ in range(2)))
    return [(k, fmt([rng.randrange(M) for _ in range(D)])) for k in sorted(keys)]


FACTS = make_facts(nfacts)


def rec(user, asst):
    return {"messages": [{"role": "user", "content": user}, {"role": "assistant", "content": asst}]}


def chain_rec(p):
    return rec(p.problem, f"{THINK_OPEN}{p.trace}{THINK_CLOSE}{p.answer}")


def fact_rec(k, v):
    return rec(f"{k}?", f"{THINK_OPEN}{THINK_CLOSE}{v}")


def facts_acc(model, tok):
    if not FACTS:
        return None
    prompts = [prompt_ids(tok, f"{k}?", ThinkFormat()) for k, _ in FACTS]
    gens = budget_forced_generate(model, tok, prompts, 4, batch_size=256)
    return sum(g.answer.strip() == v for g, (_, v) in zip(gens, FACTS)) / len(FACTS)


cfg = OrganismConfig(hidden_size=hidden, num_heads=heads, num_layers=layers, intermediate_size=4 * hidden)
cfg = replace(cfg, train=replace(cfg.train, seed=seed, max_steps=steps, learning_rate=lr, per_device_batch_size=batch,
                                  warmup_ratio=warm))
tok = build_tokenizer(); model = make_model(cfg, tok)
FDROP = float(opts.get("fdrop", 0)); LDROP = float(opts.get("ldrop", 0))
if FDROP or LDROP:
    QID = tok.convert_tokens_to_ids("?"); state = {}
    def pre(mod, args, kwargs):
        ids = kwargs.get("input_ids", args[0] if args else None)
        state["fact"] = (ids == QID).any(-1) if ids is not None else None
    model.register_forward_pre_hook(pre, with_kwargs=True)
    for layer in model.model.layers:
        orig = layer.forward
        def fwd(hidden_states, *a, _orig=orig, _layer=layer, **k):
            out = _orig(hidden_states, *a, **k)
            if not _layer.training or state.get("fact") is None:
                return out
            p = torch.full((hidden_states.shape[0],), LDROP, device=hidden_states.device)
            p = torch.where(state["fact"], torch.full_like(p, max(FDROP, LDROP)), p)
            drop = torch.rand_like(p) < p
            return torch.where(drop[:, None, None], hidden_states, out)
        layer.forward = fwd
rng = random.Random(seed + 100)
rows = []
for s in range(steps):
    lo, hi = (1, 2) if s < cur else (1, 8)
    step_rows = []
    nf = 0 if s < cur else (batch if s < facts_first else int(round(batch * share)))
    if nfacts:
        step_rows += [fact_rec(*FACTS[rng.randrange(nfacts)]) for _ in range(nf)]
    nc = batch - len(step_rows)
    step_rows += [chain_rec(make_problem(rng, rng.randint(lo, hi), 0)) for _ in range(nc)]
    rows += step_rows
t0 = time.time()
with tempfile.TemporaryDirectory() as work, tempfile.TemporaryDirectory() as out:
    args = sft_args(cfg.train, work, disable_tqdm=True)
    args.train_sampling_strategy = "sequential"
    tr = sft_trainer(model, tok, datasets.Dataset.from_list(rows), args)
    res = tr.train()
    losses = [round(h["loss"], 3) for h in tr.state.log_history if "loss" in h]
    model.save_pretrained(out); tok.save_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out).eval()
train_s = time.time() - t0
B = [s * TPS for s in (4, 5, 6, 7, 8)]


def measure(m):
    probs = make_problems(400, 5, 8, 12345, split="eval")
    prompts = [prompt_ids(tok, p.problem, ThinkFormat()) for p in probs]
    acc = []
    for gens in generate_at_budgets(m, tok, prompts, B, batch_size=256):
        acc.append(round(sum(g.answer.strip() == p.answer for g, p in zip(gens, probs)) / len(probs), 3))
    sp = make_problems(200, 1, 2, 12345, split="eval")
    sg = budget_forced_generate(m, tok, [prompt_ids(tok, p.problem, ThinkFormat()) for p in sp], 3 * TPS, batch_size=256)
    short = sum(g.answer.strip() == p.answer for g, p in zip(sg, sp)) / len(sp)
    return {"long": acc, "slope": round(acc[-1] - acc[0], 3), "short": round(short, 3), "facts": facts_acc(m, tok)}


row = {"opts": opts, "train_s": round(train_s), "loss": round(res.training_loss, 4), "losses": losses, "teacher": measure(model)}
print("ROW " + json.dumps(row), flush=True)
for k in (1, 2):
    p = copy.deepcopy(model)
    dec, _ = prune_model(p, tok, PruneConfig(method="shortgpt", n_layers=k))
    row[f"prune{k}"] = {"removed": dec.removed, **measure(p)}
    print("ROW " + json.dumps(row), flush=True)
