import json
from dataclasses import dataclass

import pytest
from tiny_models import tiny_model
from transformers import AutoTokenizer

from data_prep.build import build, build_settings, load_built
from data_prep.config import DataConfig
from data_prep.formats import assistant_turn, check_round_trip
from data_prep.quality import contamination, exact_duplicates, near_duplicates
from lprecover.cli import main
from lprecover.config import ConfigError, declare, load_config
from lprecover.organism.task import held_out, make_problems, solve


@pytest.fixture(scope="module")
def tok_dir(tmp_path_factory, organism_tokenizer):
    """A folder holding only the organism tokenizer, so building data never needs the teacher's weights."""
    path = tmp_path_factory.mktemp("tok")
    organism_tokenizer.save_pretrained(path)
    return path


def _build(tok_dir, tmp_path, *args):
    cfg = load_config(DataConfig, [f"model.name_or_path={tok_dir}", f"output_dir={tmp_path / 'out'}", *args])
    return build(cfg), load_built(tmp_path / "out")


@pytest.mark.parametrize("split", ["short", "longcot"])
def test_gsm8k_answers_match_the_source(split, gsm8k_dir, tok_dir, tmp_path):
    stats, ds = _build(
        tok_dir, tmp_path, "source=gsm8k", f"path={gsm8k_dir / 'train.jsonl'}", f"split={split}", "limit=200"
    )
    source = [json.loads(line) for line in (gsm8k_dir / "train.jsonl").read_text().splitlines()[:200]]
    gold = {r["question"].strip(): r["answer"].split("####")[-1].strip().replace(",", "") for r in source}
    assert stats["rows"] == len(ds) > 190
    for row in ds:
        assert row["answer"] == gold[row["problem"]]
        reply = row["messages"][1]["content"]
        assert reply.endswith(f"\\boxed{{{row['answer']}}}$.")
        thinking = reply.split("</think>")[0].removeprefix("<think>")
        assert (thinking == "") == (split == "short")
        assert "<<" not in thinking  # calculator annotations stripped
    tok = AutoTokenizer.from_pretrained(tok_dir)
    rendered = tok.apply_chat_template(ds[0]["messages"], tokenize=False)
    assert ds[0]["messages"][1]["content"] in rendered and ds[0]["problem"] in rendered
    assert ds[0]["num_tokens"] == len(tok.apply_chat_template(ds[0]["messages"], return_dict=True)["input_ids"])
    assert stats["tokens"]["max"] >= stats["tokens"]["p90"] >= stats["tokens"]["p50"] > 0


def test_trl_assistant_mask_covers_exactly_the_assistant_turn(gsm8k_dir, tok_dir, tmp_path):
    from lprecover.recovery.sft import sft_args, sft_trainer
    from lprecover.recovery.train_config import TrainConfig

    _, ds = _build(tok_dir, tmp_path, "source=gsm8k", f"path={gsm8k_dir / 'train.jsonl'}", "limit=8")
    tok = AutoTokenizer.from_pretrained(tok_dir)
    model = tiny_model("qwen3")
    args = sft_args(TrainConfig(max_steps=1, packing=False, max_length=2048), str(tmp_path / "trl"))
    trainer = sft_trainer(model, tok, ds, args)
    for built, row in zip(trainer.train_dataset, ds):
        masked = [t for t, label in zip(built["input_ids"], built["labels"]) if label != -100]
        assert tok.decode(masked) == tok.decode(tok.encode(row["messages"][1]["content"] + "<|end|>"))


def test_decontamination_drops_and_reports_planted_test_items(gsm8k_dir, tok_dir, tmp_path):
    test = [json.loads(line) for line in (gsm8k_dir / "test.jsonl").read_text().splitlines()[:3]]
    train = [{"question": f"Here is a problem. {t['question']}", "answer": "1"} for t in test]
    train += [{"question": f"Count the {i} apples in basket number {i} please.", "answer": str(i)} for i in range(5)]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in train))
    stats, ds = _build(
        tok_dir,
        tmp_path,
        "source=jsonl",
        f"path={path}",
        "split=short",
        "decontaminate=[gsm8k]",
        f"eval_paths.gsm8k={gsm8k_dir / 'test.jsonl'}",
    )
    report = json.loads((tmp_path / "out" / "decontamination.json").read_text())
    assert sorted(m["problem_id"] for m in report) == ["gsm8k-0", "gsm8k-1", "gsm8k-2"]
    assert stats["dropped"]["contaminated"] == 3 and len(ds) == 5


def test_contamination_matches_short_items_whole():
    tests = {
        "t": [
            ("p1", "what is two plus two"),
            ("p2", "an entirely different question about trains and their many wheels today"),
        ]
    }
    hits = contamination(["tell me: what is two plus two?", "nothing to see"], tests, n=13)
    assert [(h["train_index"], h["problem_id"]) for h in hits] == [(0, "p1")]


def test_near_duplicates_are_found_and_distinct_rows_kept():
    base = "a farmer has twelve cows and buys seven more at the market on a sunny tuesday morning how many cows"
    texts = [
        base,
        base.replace("sunny", "rainy"),
        "a train leaves the station at noon travelling at sixty miles per hour",
    ]
    assert near_duplicates(texts, threshold=0.7) == [1]


def test_organism_data_respects_chain_lengths(tok_dir, tmp_path):
    _, ds = _build(tok_dir, tmp_path, "source=organism", "options.n=60", "options.min_chain=2", "options.max_chain=4")
    steps = {len(r["problem"]) // 3 for r in ds}
    assert steps == {2, 3, 4}
    for row in ds:
        assert solve(row["problem"]) == row["answer"]
        assert row["messages"][1]["content"].endswith(f"</think>{row['answer']}")
        assert not held_out(row["problem"]), "training data never holds an evaluation chain"


def test_strict_rows_name_the_problem_and_lenient_rows_are_counted(tok_dir, tmp_path, capsys):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps({"q": "ok?", "a": "1"}) + "\n" + json.dumps({"q": "broken"}) + "\n")
    args = [
        "data",
        f"model.name_or_path={tok_dir}",
        "source=jsonl",
        f"path={path}",
        "fields.question=q",
        "fields.answer=a",
    ]
    assert main([*args, f"output_dir={tmp_path / 'strict'}"]) == 2
    err = capsys.readouterr().err
    assert "row 1" in err and "has no a" in err and "strict=false" in err
    assert not (tmp_path / "strict").exists()
    assert main([*args, "strict=false", "output_format=jsonl", f"output_dir={tmp_path / 'lenient'}"]) == 0
    stats = json.loads((tmp_path / "lenient" / "stats.json").read_text())
    assert stats["rows"] == 1 and stats["dropped"]["unparseable"] == 1
    assert len((tmp_path / "lenient" / "data.jsonl").read_text().splitlines()) == 1


def test_length_filter_reports_what_it_dropped(tok_dir, tmp_path):
    stats, ds = _build(tok_dir, tmp_path, "source=organism", "options.n=40", "max_length=30")
    assert stats["dropped"]["too_long"] > 0 and all(r["num_tokens"] <= 30 for r in ds)
    dropped = stats["dropped"]
    assert stats["rows"] + dropped["too_long"] + dropped["exact_duplicate"] + dropped["near_duplicate"] == 40


def test_thinking_formats():
    assert assistant_turn("t", "A", "qwen3") == "<think>\nt\n</think>\n\nA"
    assert assistant_turn(None, "A", "qwen3") == "<think>\n\n</think>\n\nA"
    assert assistant_turn("t", "A", "s1") == "<|im_start|>think\nt\n<|im_start|>answer\nA"
    assert assistant_turn("t", "A", "compact") == "<think>t</think>A"


def test_round_trip_check_catches_templates_that_strip_thinking(organism_tokenizer):
    stripping = (
        "{%- for m in messages -%}{%- if m['role'] == 'assistant' -%}"
        "{{ '<|assistant|>' + m['content'].split('</think>')[-1] + '<|end|>' }}"
        "{%- else -%}{{ '<|user|>' + m['content'] + '<|end|>' }}{%- endif -%}{%- endfor -%}"
    )
    tok = organism_tokenizer
    original = tok.chat_template
    messages = [{"role": "user", "content": "1a+2"}, {"role": "assistant", "content": "<think>a+2=3</think>3"}]
    check_round_trip(tok, messages)
    try:
        tok.chat_template = stripping
        with pytest.raises(ValueError, match="strip past thinking"):
            check_round_trip(tok, messages)
    finally:
        tok.chat_template = original


def test_bad_config_is_caught_before_work(tok_dir, tmp_path, capsys):
    assert main(["data", "source=reddit", f"output_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert "source must be one of gsm8k" in err and "got 'reddit'" in err
    assert main(["data", "source=organism", "decontaminate=[chess]", f"output_dir={tmp_path / 'o'}"]) == 2
    assert "Unknown task 'chess'" in capsys.readouterr().err


@pytest.mark.slow
def test_teacher_traces_are_verified_and_record_their_sampling(teacher_path, tmp_path):
    stats, ds = _build(teacher_path, tmp_path, "source=teacher", "model=organism", "options.n=48", "teacher.budget=48")
    assert stats["sampling"]["budget"] == 48 and stats["sampling"]["temperature"] == 0.0
    assert len(ds) >= 40
    for row in ds:
        reply = row["messages"][1]["content"]
        assert reply.endswith(f"</think>{row['answer']}") and "=" in reply


@pytest.mark.slow
def test_teacher_traces_resume_after_a_crash_and_match_an_uninterrupted_build(teacher_path, tmp_path, monkeypatch):
    """A build that dies after its first chunk of 16 traces keeps them; the relaunch generates the other 32 only and
    writes the rows an uninterrupted build writes (each prompt samples with its own key), then drops the store."""
    import data_prep.build as build_module  # the builder's own binding of the generator is what a kill interrupts

    args = ("source=teacher", "model=organism", "options.n=48", "teacher.budget=48", "teacher.batch_size=4")
    _, whole = _build(teacher_path, tmp_path / "whole", *args)
    real, sizes = build_module.budget_forced_generate, []

    def dies_after_one_chunk(model, tok, prompts, *rest, **kwargs):
        if sizes:
            raise KeyboardInterrupt  # a kill between chunks; a kill inside one loses at most that chunk
        sizes.append(len(prompts))
        return real(model, tok, prompts, *rest, **kwargs)

    monkeypatch.setattr(build_module, "budget_forced_generate", dies_after_one_chunk)
    with pytest.raises(KeyboardInterrupt):
        _build(teacher_path, tmp_path / "cut", *args)
    store = tmp_path / "cut" / ".out.teacher-traces" / "samples.jsonl"
    assert sizes == [16] and len(store.read_text().splitlines()) == 16 and not (tmp_path / "cut" / "out").exists()

    def counting(model, tok, prompts, *rest, **kwargs):
        sizes.append(len(prompts))
        return real(model, tok, prompts, *rest, **kwargs)

    monkeypatch.setattr(build_module, "budget_forced_generate", counting)
    _, resumed = _build(teacher_path, tmp_path / "cut", *args)
    assert sizes == [16, 16, 16], "the relaunch generated only what the first run had not"
    assert resumed.to_list() == whole.to_list()
    assert not store.parent.exists()


def test_dedup_treats_operators_digits_and_variables_as_content_and_ignores_wording_case_and_whitespace():
    # Another operator, operand or start value, or one more step, is another problem; so is another variable's case
    # (the organism's symbols K and k are two of its 53 values).
    chains = ["3a-2b*2", "3a+2b-2", "3a-2b*3", " 3a - 2b*2 ", "3a-2b*2c+1", "4a-2b*2", "3A-2b*2", "Ka+3", "ka+3"]
    assert exact_duplicates(chains) == [3]
    assert near_duplicates([c for i, c in enumerate(chains) if i != 3]) == []
    # Rows that differ only in an operator are two problems; a row repeated as it is, is one.
    for a, b in (("3a-2b*2", "3a+2b*2"), ("3+4=7", "3-4=-1"), ("What is 3+4?", "What is 3*4?")):
        assert exact_duplicates([a, b]) == [] and near_duplicates([a, b]) == []
        assert exact_duplicates([a, b, a]) == [2] and near_duplicates([a, b, a]) == [2]

    # Long enough that one operator changes only 3 of 41 shingles (Jaccard 38/44 = 0.86, over the 0.85 threshold):
    # the wording is shared, the problem is not.
    story = (
        "A farmer has 12 cows and buys 7 more at the market on a sunny Tuesday morning, then sells 3 of them to a "
        "neighbour who keeps them in a big red barn. What is 12 + 7 - 3?"
    )
    other_operator = story.replace("12 + 7", "12 * 7")
    reworded = story.replace("sunny", "rainy")
    assert exact_duplicates([story, other_operator, story.upper().replace(" ", "  ")]) == [2]
    assert near_duplicates([story, other_operator, reworded]) == [2]


def test_decontamination_counts_words_and_matches_the_symbols_between_them():
    tests = {"t": [("p1", "what is 12 + 7 - 3"), ("p2", "x*y = 6, x - y = 1; find x")]}
    train = [
        "tell me: WHAT is 12+7-3?",
        "what is 12 - 7 - 3",
        "so x * y = 6 , x-y = 1 ; find x now",
        "x*y = 6, x - y = 1; find y",
    ]
    hits = contamination(train, tests, n=13)
    assert [(h["train_index"], h["problem_id"], h["ngram"]) for h in hits] == [
        (0, "p1", "what is 12 + 7 - 3"),
        (2, "p2", "x * y = 6 , x - y = 1 ; find x"),
    ]
    # p2 has 8 words (x y 6 x y 1 find x) in 14 tokens; the last row shares its first 7 words and 13 tokens, so it
    # matches 7-word n-grams but not 8-word ones.
    assert [h["train_index"] for h in contamination(train, tests, n=8) if h["problem_id"] == "p2"] == [2]
    assert [h["train_index"] for h in contamination(train, tests, n=7) if h["problem_id"] == "p2"] == [2, 3]


def test_dedup_drops_exactly_the_repeated_organism_problems(tok_dir, tmp_path):
    chains = ["options.n=2000", "options.min_chain=1", "options.max_chain=8", "options.seed=0"]
    stats, ds = _build(tok_dir, tmp_path, "source=organism", "split=short", *chains)
    problems = [p.problem for p in make_problems(2000, 1, 8, seed=0)]
    distinct = set(problems)
    repeats = len(problems) - len(distinct)
    # The 250 one-step chains draw from the ~371 of 53 * 2 * 4 = 424 problems not held out, so many repeat.
    assert repeats > 50
    assert stats["dropped"]["exact_duplicate"] == repeats and stats["dropped"]["near_duplicate"] == 0
    assert len(ds) == len(distinct) and set(ds["problem"]) == distinct


def test_build_keeps_rows_that_differ_in_an_operator_and_drops_repeats(tok_dir, tmp_path):
    rows = [
        {"question": "3+4=?", "answer": "7"},
        {"question": "3-4=?", "answer": "-1"},
        {"question": "3*4=?", "answer": "12"},
        {"question": " 3 + 4 = ? ", "answer": "7"},  # the first row again, spaced out
        {"question": "3-4=?", "answer": "-1"},  # the second row again, as it is
    ]
    path = tmp_path / "rows.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    stats, ds = _build(tok_dir, tmp_path, "source=jsonl", f"path={path}", "split=short")
    assert ds["problem"] == ["3+4=?", "3-4=?", "3*4=?"] and ds["answer"] == ["7", "-1", "12"]
    assert stats["dropped"]["exact_duplicate"] == 2 and stats["dropped"]["near_duplicate"] == 0


def test_near_dedup_reads_variables_as_content():
    # Two long expressions that differ only in one variable: another problem, with another value.
    a = "With a=3, b=5, c=7 and d=2, compute a*b+c-d*a+b*c-a+d*b+c*a-d+a*c-b+d*c-a*b+d."
    b = a.replace("d*b+c", "d*a+c")
    assert exact_duplicates([a, b]) == [] and near_duplicates([a, b]) == []
    assert near_duplicates([a, b, a]) == [2]


def test_organism_data_is_keyed_by_the_organism_task(monkeypatch, tok_dir, tmp_path):
    """The mod-5 organism's cached recovery data was reused for the 53-symbol task (same spec, same build version):
    a new task version is a new cache entry, and a built folder of the old task is refused, naming the version;
    other sources do not depend on it."""
    from dataclasses import replace

    from lprecover import registry
    from lprecover.modeling import ModelConfig
    from lprecover.recovery import data
    from lprecover.recovery.recipe import TrainData

    organism_data, gsm8k = TrainData(), TrainData(source="gsm8k")
    before = data._built_dir(organism_data, ModelConfig()), data._built_dir(gsm8k, ModelConfig())
    args = ("source=organism", "split=short", "options.n=20")
    _build(tok_dir, tmp_path, *args)
    source = registry.data_source("organism")  # the organism plugin registers its task version with its data
    monkeypatch.setitem(registry.DATA_SOURCES, "organism", replace(source, version=source.version + 1))
    after = data._built_dir(organism_data, ModelConfig()), data._built_dir(gsm8k, ModelConfig())
    assert before[0] != after[0] and before[0].name.startswith("organism-longcot-")
    assert before[1] == after[1]
    with pytest.raises(ConfigError, match=r"organism_task_version: 6 -> 7"):
        _build(tok_dir, tmp_path, *args)


@dataclass
class Countdown:
    """A toy plugin's options: ``count`` problems ``k - 1 = ?`` for k = start, start + 1, ..."""

    count: int = declare(3, help="Problems.", ge=1)
    start: int = declare(10, help="The first k.", ge=1)


def _countdown(options: Countdown, split: str) -> list[dict]:
    ks = range(options.start, options.start + options.count)
    return [
        {
            "id": f"cd-{k}",
            "problem": f"{k}-1=?",
            "trace": f"{k} less one" if split == "longcot" else None,
            "answer": str(k - 1),
        }
        for k in ks
    ]


def test_a_plugin_data_source_declares_its_own_options(monkeypatch, tok_dir, tmp_path):
    """A data source registered the way a plugin registers one is built with its own keys (``options.*``, in a
    recipe ``data.options.*``), checked by its declaration, with no line of the core naming it."""
    from lprecover import registry
    from lprecover.recovery.recipe import RecoveryConfig

    registry.load_plugins()
    monkeypatch.setitem(registry.DATA_SOURCES, "countdown", registry.DataSource(_countdown, options=Countdown))
    stats, ds = _build(tok_dir, tmp_path, "source=countdown", "options.count=4", "options.start=20", "dedup=false")
    assert stats["rows"] == 4
    assert sorted(zip(ds["problem"], ds["answer"])) == [
        ("20-1=?", "19"),
        ("21-1=?", "20"),
        ("22-1=?", "21"),
        ("23-1=?", "22"),
    ]
    assert "21 less one" in ds[1]["messages"][-1]["content"]
    # A build records every option (unset ones at their defaults): naming a default builds the same data set.
    given = load_config(DataConfig, ["source=countdown", "options.count=4", f"output_dir={tmp_path / 'x'}"])
    named = load_config(DataConfig, ["source=countdown", "options.count=4", "options.start=10", "output_dir=y"])
    assert build_settings(given)["options"] == build_settings(named)["options"] == {"count": 4, "start": 10}
    recipe = load_config(
        RecoveryConfig, ["recipe=sft_longcot", "data.source=countdown", "data.options.start=5"], recipe_key="recipe"
    )
    assert recipe.data.options == {"start": 5}
    with pytest.raises(ConfigError, match=r"data.options.start must be at least 1, got 0"):
        load_config(
            RecoveryConfig,
            ["recipe=sft_longcot", "data.source=countdown", "data.options.start=0"],
            recipe_key="recipe",
        )
