"""``lprecover eval import=[...]``: lm-eval --log_samples files rescored into a native evaluation.

The fixtures are written in the format lm-eval writes (``samples_<task>_<timestamp>.jsonl`` beside
``results_<timestamp>.json``): s1's fork with budget forcing, as the seed repository's scripts run it (sequential
files per seed and budget; a parallel file with 4 repeats and per-sample marks), and the main harness, which writes
one line per document and filter.
"""

import json

import pytest

from lprecover.cli import main
from lprecover.evaluation.importer import file_task, map_task, scored_text

TS = "2025-02-03T14-05-09.123456"
FORCED = "<|im_start|>think\nLet me compute.\n<|im_start|>answer\nFinal Answer: "
NATURAL = "<|im_start|>think\nLet me compute.\n<|im_start|>answer\nAnswer: "


def s1_record(doc_id, gold, responses, marks, budget, seed, temperature=1.0):
    settings = {"until": [], "do_sample": False, "temperature": temperature, "max_gen_toks": 32768, "seed": seed}
    if budget:
        settings["max_tokens_thinking"] = budget
    record = {
        "doc_id": doc_id,
        "doc": {"id": doc_id, "problem": f"Problem {doc_id}", "answer": gold},
        "target": gold,
        "arguments": {"gen_args_0": {"arg_0": f"<|im_start|>user\nProblem {doc_id}<|im_end|>", "arg_1": settings}},
        "resps": [responses],
        "filtered_resps": [responses[0]] if len(responses) == 1 else [responses],
        "doc_hash": "d" * 64,
        "prompt_hash": f"{doc_id:x}" * 64,
        "target_hash": "t" * 64,
        "exact_match": marks[0],
        "extracted_answers": ["?"] * len(responses),
    }
    if len(responses) > 1:
        record["exact_matches"] = marks
    return record


def write(folder, task, records, model="simplescaling/s1.1-7B", ts=TS):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"samples_{task}_{ts}.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    results = {"config": {"model": "vllm", "model_args": f"pretrained={model},dtype=bfloat16"}}
    (folder / f"results_{ts}.json").write_text(json.dumps(results))
    return path


def test_file_names_and_scored_text_follow_lm_eval_and_s1():
    assert file_task(tmp := __import__("pathlib").Path(f"samples_aime24_nofigures_{TS}.jsonl")) == "aime24_nofigures"
    assert map_task(file_task(tmp)) == "aime24"
    assert map_task("openai_math") == "math500" and map_task("gpqa_diamond_openai") == "gpqa_diamond"
    assert map_task("gsm8k_cot_self_consistency") == "gsm8k" and map_task("hellaswag") is None
    # s1 grades the last answer segment; a forced close is s1's cue right after the first thinking block.
    assert scored_text(FORCED + "\\boxed{5}") == ("\nFinal Answer: \\boxed{5}", True)
    assert scored_text(NATURAL + "5") == ("\nAnswer: 5", False)
    assert scored_text("<think>hm</think>The answer is 5") == ("The answer is 5", None)


def test_seed_protocol_files_import_as_curves(tmp_path, capsys):
    base = tmp_path / "lm_eval"
    files = []
    # Sequential: two problems, budgets 512 and 1024, seeds 7 and 11 (one response each).
    answers = {(512, 7): ("204", "70"), (512, 11): ("204", "72"), (1024, 7): ("204", "72"), (1024, 11): ("204", "72")}
    for (budget, seed), (a0, a1) in answers.items():
        records = [
            s1_record(0, "204", [FORCED + f"\\boxed{{{a0}}}"], [int(a0 == "204")], budget, seed),
            s1_record(1, "72", [NATURAL + a1], [int(a1 == "72")], budget, seed),
        ]
        files.append(write(base / f"seed{seed}" / "m", "aime24_nofigures", records, ts=f"{budget}-{seed}"))
    # Parallel: four repeats per problem; the file's own mark disagrees with lprecover once (its judge said 1).
    par = [
        s1_record(
            0,
            "7",
            [FORCED + "\\boxed{7}", FORCED + "\\boxed{8}", NATURAL + "7", FORCED + "no idea"],
            [1, 0, 1, 0],
            0,
            7,
        ),
        s1_record(1, "9", [NATURAL + "3", NATURAL + "3", FORCED + "\\boxed{9}", NATURAL + "3"], [0, 0, 1, 1], 0, 7),
    ]
    files.append(write(base / "par" / "m", "aime_nofigures_pass16", par))
    out = tmp_path / "imported"
    assert main(["eval", f"import=[{','.join(map(str, files))}]", f"output_dir={out}", "eval.bootstrap=50"]) == 0

    curves = json.loads((out / "curves.json").read_text())
    seq = curves["sequential"]["aime24"]
    # Budget 512: problem 0 right for both seeds (1.0), problem 1 right for seed 11 only (0.5): mean 0.75.
    assert seq["budget"] == [512, 1024] and seq["accuracy"] == pytest.approx([0.75, 1.0])
    assert seq["truncated"] == pytest.approx([0.5, 0.5])  # problem 0 was forced, problem 1 closed by itself
    p = curves["parallel"]["aime_nofigures"]
    assert p["k"] == [1, 2, 4]
    # Problem 0: 2 of 4 correct; problem 1: 1 of 4. pass@2 = (1 - 1/6 + 1 - 3/6) / 2.
    assert p["pass_at_1"] == pytest.approx((2 / 4 + 1 / 4) / 2)
    assert p["pass_at_k"] == pytest.approx([0.375, (5 / 6 + 1 / 2) / 2, 1.0])
    # cov@2 (first two): problem 0 yes, problem 1 no. maj@4 first-k: p0 "7" twice vs 8 and no answer -> 1; p1 "3" -> 0.
    assert p["cov_at_k"][1] == 0.5 and p["maj_first_at_k"][2] == 0.5
    summary = json.loads((out / "summary.json").read_text())
    # Marks: 8 sequential (all agree) + 8 parallel (one disagrees) -> but per task.
    assert summary["aime24"]["import_agreement"] == 1.0 and summary["aime24"]["import_marked_samples"] == 8
    assert summary["aime_nofigures"]["import_agreement"] == pytest.approx(7 / 8)
    assert summary["aime_nofigures"]["extraction_failure_rate"] == pytest.approx(1 / 8)
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 8 + 8 and {r["sample"] for r in rows if r["mode"] == "sequential"} == {0, 1}
    assert (out / "curves.png").stat().st_size > 5000
    import yaml

    assert yaml.safe_load((out / "config.yaml").read_text())["model"]["name_or_path"] == "simplescaling/s1.1-7B"

    # Rerunning the same import changes nothing; the comparison reads the folder like any evaluation.
    before = (out / "samples.jsonl").read_bytes()
    assert main(["eval", f"import=[{','.join(map(str, files))}]", f"output_dir={out}", "eval.bootstrap=50"]) == 0
    assert (out / "samples.jsonl").read_bytes() == before
    assert main(["compare", f"runs=[{out}]", f"output_dir={tmp_path / 'cmp'}"]) == 0
    assert "aime24" in (tmp_path / "cmp" / "report.md").read_text()


def test_main_harness_files_keep_one_line_per_document(tmp_path, capsys):
    target = "She sells 9 eggs and makes 9 * 2 = 18.\n#### 18"
    records = []
    for flt in ("strict-match", "flexible-extract"):  # the main harness repeats each document per filter
        for doc_id, resp, mark in ((0, " 9 * 2 = 18\n#### 18", 1), (1, " so the answer is 20.", 0)):
            records.append(
                {
                    "doc_id": doc_id,
                    "doc": {"question": f"Q{doc_id}", "answer": target},
                    "target": target,
                    "arguments": {"gen_args_0": {"arg_0": "Question: ...", "arg_1": {"until": ["Question:"]}}},
                    "resps": [[resp]],
                    "filtered_resps": ["18"],
                    "filter": flt,
                    "metrics": ["exact_match"],
                    "exact_match": mark,
                }
            )
    path = write(tmp_path / "lm", "gsm8k_cot", records, model="HuggingFaceTB/SmolLM2-135M-Instruct")
    out = tmp_path / "o"
    # No budget in the file: the import asks for one, naming the setting, and writes nothing.
    assert main(["eval", f"import=[{path}]", f"output_dir={out}"]) == 2
    assert "import_budget=" in capsys.readouterr().err and not out.exists()
    assert main(["eval", f"import=[{path}]", "import_budget=256", f"output_dir={out}", "eval.bootstrap=20"]) == 0
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert [(r["problem_id"], r["extracted"], r["gold"], r["correct"]) for r in rows] == [
        ("gsm8k-0", "18", "18", True),
        ("gsm8k-1", "20", "18", False),
    ]
    assert json.loads((out / "summary.json").read_text())["gsm8k"]["import_agreement"] == 1.0


@pytest.mark.parametrize(
    "content, name, args, message",
    [
        (
            '{"doc_id": 0, "resps": [["x"]]}\n{"doc_id": 1, bad\n',
            "samples_gsm8k_x.jsonl",
            ["import_budget=8"],
            "Line 2 of",
        ),
        ('{"doc_id": 0, "target": "1", "resps": [["x"]]}\n', "samples_hellaswag_x.jsonl", [], "pass import_task="),
        (
            '{"doc_id": 0, "target": "1", "resps": [[1]]}\n',
            "samples_gsm8k_x.jsonl",
            ["import_budget=8"],
            "lists of strings",
        ),
        (
            '{"doc_id": 0, "target": "7", "resps": [["x"]]}\n',
            "samples_gpqa_diamond_x.jsonl",
            ["import_budget=8"],
            "not a choice letter",
        ),
        ("", "samples_gsm8k_x.jsonl", ["import_budget=8"], "holds no samples"),
    ],
)
def test_bad_import_files_are_refused_before_anything_is_written(tmp_path, capsys, content, name, args, message):
    path = tmp_path / name
    path.write_text(content)
    assert main(["eval", f"import=[{path}]", *args, f"output_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
