import datasets
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from lprecover.cli import main
from lprecover.organism.check import default_budgets, sequential_curve
from lprecover.organism.task import TOKENS_PER_STEP, make_problem, make_problems, solve, to_record
from lprecover.surgery import remove_layers


def test_problems_are_solvable_and_balanced():
    problems = make_problems(160, 1, 8, seed=0)
    assert [sum(p.steps == k for p in problems) for k in range(1, 9)] == [20] * 8
    for p in problems:
        assert solve(p.problem) == p.answer
        assert len(p.trace) == TOKENS_PER_STEP * p.steps
        assert p.trace.endswith("=" + p.answer)
    assert make_problems(5, 2, 4, seed=7) == make_problems(5, 2, 4, seed=7)
    with pytest.raises(ValueError, match="steps must be between"):
        make_problem(__import__("random").Random(0), 0)


def test_guessing_scores_one_in_53():
    """Every final answer of a long chain is one of 53 symbols, equally likely (the start is uniform and every step is
    a bijection of the cycle): a constant guess scores 1/53 = 1.9% on long chains (the mod-5 organism's floor was
    0.2). Sampled: each symbol's count in 10,600 draws is within 3 standard deviations of 200. The 100 facts have
    38 distinct answers; the best constant guess knows 7 of them."""
    from collections import Counter

    from lprecover.organism.task import MODULUS, SYMBOLS, facts

    assert MODULUS == len(set(SYMBOLS)) == 53
    for lo, hi in ((5, 8), (3, 4)):
        answers = Counter(p.answer for p in make_problems(10600, lo, hi, seed=3, split="eval"))
        assert set(answers) == set(SYMBOLS) and max(answers.values()) <= 200 + 3 * 14, (lo, hi, answers.most_common(2))
    known = Counter(f.answer for f in facts())
    assert max(known.values()) == 7 and len(known) == 38


def test_splits_share_one_schema():
    p = make_problems(1, 3, 3, seed=1)[0]
    long, short = to_record(p, "longcot"), to_record(p, "short")
    assert long["messages"][1]["content"] == f"<think>{p.trace}</think>{p.answer}"
    assert short["messages"][1]["content"] == f"<think></think>{p.answer}"
    assert set(long) == set(short) >= {"messages", "problem", "answer", "source"}


def test_tokenizer_round_trips_and_masks_only_the_assistant_turn(organism_tokenizer, tmp_path):
    organism_tokenizer.save_pretrained(tmp_path)
    tok = AutoTokenizer.from_pretrained(tmp_path)
    record = to_record(make_problems(1, 4, 4, seed=2)[0], "longcot")
    text = tok.apply_chat_template(record["messages"], tokenize=False)
    enc = tok.apply_chat_template(record["messages"], return_dict=True, return_assistant_tokens_mask=True)
    assert tok.decode(enc["input_ids"]) == text
    masked = [t for t, m in zip(enc["input_ids"], enc["assistant_masks"]) if m]
    assert tok.decode(masked) == record["messages"][1]["content"] + "<|end|>"
    assert tok.padding_side == "left"
    think_ids = tok.encode("<think></think>", add_special_tokens=False)
    assert len(think_ids) == 2  # each delimiter is one token, as budget forcing needs


def test_data_command_writes_short_chain_recovery_data(tmp_path, organism_tokenizer):
    organism_tokenizer.save_pretrained(tmp_path / "tok")
    out = tmp_path / "short"
    args = ["data", f"model.name_or_path={tmp_path / 'tok'}", "source=organism", "split=short", "options.n=40"]
    assert main([*args, "options.max_chain=4", "dedup=false", f"output_dir={out}"]) == 0
    ds = datasets.load_from_disk(str(out / "data"))
    assert len(ds) == 40 and max(len(p) // 3 for p in ds["problem"]) == 4
    assert all(m[1]["content"].startswith("<think></think>") for m in ds["messages"])


def test_budgets_cover_one_step_to_a_full_chain():
    assert default_budgets(8) == [5, 10, 20, 30, 40]
    assert default_budgets(2) == [5, 10]
    assert default_budgets(8, 5) == [20, 25, 30, 35, 40]  # organism_long: one step more at each budget


@pytest.mark.slow
def test_teacher_scales_with_thinking_and_collapses_when_pruned(teacher_path):
    tok = AutoTokenizer.from_pretrained(teacher_path)
    model = AutoModelForCausalLM.from_pretrained(teacher_path).eval()
    curve = sequential_curve(model, tok, n=240)
    acc = curve["accuracy"]
    assert acc[-1] >= 0.9, curve
    assert acc[-1] - acc[0] >= 0.5, curve
    n = model.config.num_hidden_layers
    remove_layers(model, [n // 2 - 1, n // 2])
    pruned = sequential_curve(model, tok, n=240, budgets=[curve["budget"][-1]])
    assert acc[-1] - pruned["accuracy"][0] >= 0.3, (curve, pruned)


def _fake_builds(monkeypatch, builds):
    """Replace training by cards with the given (accuracy curve, facts accuracy), one per build, recording the seeds
    asked for."""
    import json

    from lprecover.organism import build

    seeds = []

    def fake(cfg, out_dir):
        seeds.append(cfg.train.seed)
        card = {"config": {"seed": cfg.train.seed}, "train_seconds": 0.0}
        accuracy, card["facts_accuracy"] = builds[len(seeds) - 1]
        card["curve"] = {"budget": [5, 10, 20, 30, 40], "accuracy": accuracy}
        (out_dir / build.CARD).write_text(json.dumps(card))
        (out_dir / "model.safetensors").write_text("weights")
        return card

    monkeypatch.setattr(build, "build_teacher", fake)
    return seeds


def test_a_teacher_below_the_bar_is_never_cached(monkeypatch, tmp_path):
    """A stalled teacher (0.33 at full budget, as built once with one thread) was cached and used silently."""
    import json

    from lprecover.organism.build import CARD, OrganismConfig, ensure_teacher, teacher_dir

    monkeypatch.setenv("LPRECOVER_CACHE", str(tmp_path))
    stalled, good = [0.27, 0.30, 0.34, 0.32, 0.33], [0.30, 0.38, 0.61, 0.79, 1.00]
    seeds = _fake_builds(monkeypatch, [(stalled, 1.0), (good, 1.0)])
    path = ensure_teacher(OrganismConfig(), use_shipped=False)  # the shipped copy would spare the build
    assert seeds == [0, 1] and path == teacher_dir(OrganismConfig())
    card = json.loads((path / CARD).read_text())
    assert card["curve"]["accuracy"] == good and [a["seed"] for a in card["attempts"]] == [0, 1]
    assert card["fingerprint"] == OrganismConfig().fingerprint()


def test_a_build_that_never_reaches_the_bar_fails_naming_what_it_tried(monkeypatch, tmp_path):
    from lprecover.organism.build import MAX_ATTEMPTS, OrganismConfig, ensure_teacher, teacher_dir

    monkeypatch.setenv("LPRECOVER_CACHE", str(tmp_path))
    # Accurate at full budget but flat (no scaling); plateaued; scaling but not knowing its facts: none is a teacher.
    flat, plateau, scaling = [0.95] * 5, [0.2, 0.3, 0.4, 0.5, 0.6], [0.05, 0.3, 0.5, 0.75, 1.0]
    seeds = _fake_builds(monkeypatch, [(flat, 1.0), (plateau, 1.0), (scaling, 0.85)])
    with pytest.raises(RuntimeError, match=r"No organism teacher reached the bar .* seed 0: \[0.95") as err:
        ensure_teacher(OrganismConfig(), use_shipped=False)
    assert seeds == list(range(MAX_ATTEMPTS)) and "seed 1: [0.20, 0.30" in str(err.value)
    assert "seed 2: [0.05, 0.30, 0.50, 0.75, 1.00] over budgets [5, 10, 20, 30, 40], facts 0.85" in str(err.value)
    assert "over budgets [5, 10, 20, 30, 40]" in str(err.value)
    assert not teacher_dir(OrganismConfig()).exists()
    assert not [p for p in (tmp_path / "organism").iterdir() if not p.name.endswith(".lock")]


def test_evaluation_problems_are_held_out_of_every_training_set():
    """Every one-step evaluation problem used to be a training problem too (there were only 60 of them)."""
    from lprecover.organism.build import OrganismConfig, training_data
    from lprecover.organism.task import held_out

    evals = {p.problem for lo, hi in ((1, 2), (5, 8), (1, 8)) for p in make_problems(200, lo, hi, 12345, "eval")}
    assert all(held_out(p) for p in evals)
    for seed in (0, 1, 12345):
        train = {p.problem for p in make_problems(3000, 1, 8, seed)}
        assert not train & evals and not any(held_out(p) for p in train)
    assert {p.problem for p in make_problems(3000, 1, 1, 0)} & {p.problem for p in make_problems(3000, 1, 1, 5)}
    # One problem in eight, by a fixed hash: about 53 of the 424 one-step problems (53 starts x 8 shifts) are for
    # evaluation only.
    one_step = {p.problem for p in make_problems(8000, 1, 1, 3)} | {
        p.problem for p in make_problems(1000, 1, 1, 3, "eval")
    }
    assert len(one_step) == 424 and 35 <= sum(held_out(p) for p in one_step) <= 75
    cfg = OrganismConfig()
    cfg.train.max_steps = 5
    rows = training_data(cfg)["problem"]
    # 40% of rows are facts (recall of trained facts is what organism_facts measures), each as often as any other.
    fact_rows = [p for p in rows if p.endswith("?")]
    assert len(rows) == 320 and len(fact_rows) == 128 and len(set(fact_rows)) == 100
    assert not any(held_out(p) for p in rows if p not in fact_rows)
    with pytest.raises(ValueError, match="Unknown split 'test'"):
        make_problems(1, 1, 1, 0, split="test")


def test_fact_rows_skip_blocks_in_training_only(organism_tokenizer):
    """Stochastic depth on fact rows: at p=1 a fact row skips every block (its logits are those of the embeddings
    alone), a chain row in the same batch is untouched, and eval mode and the model after training are plain."""
    import torch

    from lprecover.organism.build import OrganismConfig, fact_rows_skip_layers, make_model

    tok = organism_tokenizer
    model = make_model(OrganismConfig(), tok).train()
    ids = torch.tensor([tok("QK?")["input_ids"], tok("8a+")["input_ids"]])
    assert ids.shape == (2, 3)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        with fact_rows_skip_layers(model, tok, 1.0):
            skipped = model(input_ids=ids).logits
            in_eval = model.eval()(input_ids=ids).logits
            model.train()
        after = model(input_ids=ids).logits
        embeddings_only = model.lm_head(model.model.norm(model.model.embed_tokens(ids)))
    torch.testing.assert_close(skipped[0], embeddings_only[0])
    assert not torch.allclose(plain[0], embeddings_only[0])
    assert torch.equal(skipped[1], plain[1]) and torch.equal(in_eval, plain) and torch.equal(after, plain)
    # Training that never shows a fact row has skipped nothing: an error, not a teacher trained without the skips.
    with pytest.raises(RuntimeError, match="training showed no fact row"):
        with torch.no_grad(), fact_rows_skip_layers(model, tok, 0.3):
            model(input_ids=ids[1:])


def test_the_facts_task_follows_what_the_teacher_was_trained_on(organism_tokenizer):
    """A teacher trained on 50 facts is evaluated on those 50 (the same names and answers it was trained on), and
    one trained on none has no facts task."""
    from lprecover.evaluation.run import traits_of
    from lprecover.evaluation.tasks import load_task
    from lprecover.organism.build import OrganismConfig, make_model, training_data
    from lprecover.organism.task import facts

    cfg = OrganismConfig(facts=50)
    cfg.train.max_steps = 5
    trained = {(r["problem"], r["answer"]) for r in training_data(cfg) if r["problem"].endswith("?")}
    model = make_model(cfg, organism_tokenizer)
    task = load_task("organism_facts", model_options=traits_of(model).task_options)
    assert {(p.prompt, p.gold) for p in task.problems} == trained == {(f.prompt, f.answer) for f in facts(50)}
    assert traits_of(model).tasks == ("organism_long", "organism_facts")
    assert traits_of(make_model(OrganismConfig(facts=0), organism_tokenizer)).tasks == ("organism_long",)
    assert len(load_task("organism_facts").problems) == 100


def test_organism_info_prints_the_cached_card_with_its_facts(monkeypatch, tmp_path, capsys):
    import json

    from lprecover.organism.build import CARD, OrganismConfig, teacher_dir

    monkeypatch.setenv("LPRECOVER_CACHE", str(tmp_path))
    assert main(["organism", "info"]) == 0
    assert "not built yet" in capsys.readouterr().err
    card = {
        "parameters": 400896,
        "train_seconds": 301.5,
        "curve": {"budget": [20, 40], "accuracy": [0.05, 1.0]},
        "pruned_middle_two_curve": {"budget": [20, 40], "accuracy": [0.0, 0.02]},
        "facts_accuracy": 1.0,
        "pruned_middle_two_facts_accuracy": 0.97,
    }
    teacher_dir(OrganismConfig()).mkdir(parents=True)
    (teacher_dir(OrganismConfig()) / CARD).write_text(json.dumps(card))
    assert main(["organism", "info"]) == 0
    out = capsys.readouterr().out
    assert "two middle layers removed:  0.00   0.02" in out
    assert "memorised facts recalled:  1.00 (0.97 with the two middle layers removed)" in out
