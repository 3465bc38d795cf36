"""``lprecover eval import=[...]`` of main-harness runs whose budget is ``max_gen_toks``, and of files nobody meant.

The main lm-evaluation-harness has no budget forcing: a scaling curve there is one run per ``max_gen_toks``. Each
file is written as the harness writes ``--log_samples`` (one line per document and filter, the generation settings
in ``arguments.gen_args_0.arg_1``), beside the ``results_*.json`` that names the model.
"""

import json
import math

import pytest

from lprecover.cli import main

BUDGETS = (512, 1024, 2048, 4096, 8192)
RIGHT = {512: 1, 1024: 2, 2048: 2, 4096: 3, 8192: 4}  # of the 4 documents, how many the run answered right
MODEL = "Qwen/Qwen3-0.6B"


def harness_lines(budget: int, right: int, temperature: float = 0.0) -> list[dict]:
    """A gsm8k_cot run at ``max_gen_toks=budget``: documents 0..right-1 answered right, the others off by 100."""
    settings = {"until": ["Question:"], "do_sample": temperature > 0, "temperature": temperature}
    settings["max_gen_toks"] = budget
    lines = []
    for flt in ("strict-match", "flexible-extract"):  # the main harness repeats each document once per filter
        for doc_id in range(4):
            gold = 10 + doc_id
            answer = gold if doc_id < right else gold + 100
            lines.append(
                {
                    "doc_id": doc_id,
                    "doc": {"question": f"Q{doc_id}", "answer": f"Work.\n#### {gold}"},
                    "target": f"Work.\n#### {gold}",
                    "arguments": {"gen_args_0": {"arg_0": f"Question: Q{doc_id}\nAnswer:", "arg_1": settings}},
                    "resps": [[f" Some work. The answer is {answer}."]],
                    "filtered_resps": [str(answer)],
                    "filter": flt,
                    "metrics": ["exact_match"],
                    "exact_match": int(doc_id < right),
                }
            )
    return lines


def write_run(folder, budget: int, lines: list[dict]) -> str:
    """One lm-eval run's files; the timestamp tells the runs apart, as the harness names them."""
    folder.mkdir(parents=True, exist_ok=True)
    ts = f"2025-03-01T00-00-{budget:05d}"
    path = folder / f"samples_gsm8k_cot_{ts}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    results = {"config": {"model": "hf", "model_args": f"pretrained={MODEL},dtype=bfloat16"}}
    (folder / f"results_{ts}.json").write_text(json.dumps(results))
    return str(path)


def test_max_gen_toks_runs_import_as_one_curve(tmp_path):
    files = [write_run(tmp_path / "lm_eval" / "m", b, harness_lines(b, RIGHT[b])) for b in BUDGETS]
    out = tmp_path / "imported"
    assert main(["eval", f"import=[{','.join(files)}]", f"output_dir={out}", "eval.bootstrap=50"]) == 0

    seq = json.loads((out / "curves.json").read_text())["sequential"]["gsm8k"]
    assert seq["budget"] == list(BUDGETS)
    assert seq["accuracy"] == pytest.approx([1 / 4, 2 / 4, 2 / 4, 3 / 4, 4 / 4])
    # One response per document: a proportion of 4, so Wilson; 4 of 4 reads [4/(4 + z²), 1] = [0.510, 1].
    z2 = 1.959963984540054**2
    assert seq["ci_method"] == ["wilson"] * 5
    assert seq["ci_low"][-1] == pytest.approx(4 / (4 + z2)) and seq["ci_high"][-1] == 1.0
    summary = json.loads((out / "summary.json").read_text())["gsm8k"]
    # Slope against log2(budget) = 9..13 (mean 11), accuracy mean 0.6:
    # (-2·-0.35 + -1·-0.1 + 0·-0.1 + 1·0.15 + 2·0.4) / (4 + 1 + 0 + 1 + 4) = 1.75 / 10.
    assert summary["scaling_slope"] == pytest.approx(0.175)
    assert summary["accuracy_at_max_budget"] == 1.0 and summary["accuracy_at_min_budget"] == 0.25
    assert summary["import_agreement"] == 1.0 and summary["import_marked_samples"] == 5 * 4
    rows = [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]
    assert len(rows) == 5 * 4 and {r["sample"] for r in rows} == {0}
    # The budget's key is the x axis, named, and not a setting the points must share.
    assert {json.dumps(r["sampling"], sort_keys=True) for r in rows} == {
        json.dumps(
            {
                "budget_from": "max_gen_toks",
                "num_waits": 0,
                "source": "lm-eval log_samples",
                "temperature": 0.0,
                "top_p": 1.0,
            },
            sort_keys=True,
        )
    }


def test_a_run_at_another_temperature_is_refused_naming_it(tmp_path, capsys):
    files = [write_run(tmp_path / "m", b, harness_lines(b, RIGHT[b])) for b in BUDGETS]
    hot = write_run(tmp_path / "m", 16384, harness_lines(16384, 4, temperature=0.6))
    out = tmp_path / "o"
    assert main(["eval", f"import=[{','.join([*files, hot])}]", f"output_dir={out}"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert "different settings (temperature=0.0 in " in err and f"temperature=0.6 in {hot}" in err
    assert not out.exists()  # refused before anything is written


def test_an_s1_run_does_not_join_a_max_gen_toks_curve(tmp_path, capsys):
    # s1's fork caps the thinking (max_tokens_thinking) within a max_gen_toks: another protocol, named as such.
    s1 = harness_lines(1024, 2)
    for line in s1:
        line["arguments"]["gen_args_0"]["arg_1"] = {"temperature": 0.0, "max_gen_toks": 32768}
        line["arguments"]["gen_args_0"]["arg_1"]["max_tokens_thinking"] = 1024
    files = [write_run(tmp_path / "a", 512, harness_lines(512, 1)), write_run(tmp_path / "b", 1024, s1)]
    assert main(["eval", f"import=[{','.join(files)}]", f"output_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert 'budget_from="max_gen_toks", max_gen_toks=null in ' in err
    assert 'budget_from="max_tokens_thinking", max_gen_toks=32768 in ' in err


def test_responses_with_unicode_line_separators_and_odd_arguments_import(tmp_path):
    # json.dumps(ensure_ascii=False), as lm-eval writes, leaves U+2028 raw inside a response: it is not a new line.
    lines = [
        {"doc_id": 0, "target": "#### 9", "arguments": 5, "resps": [[" 4 + 5 = 9\u2028so the answer is 9."]]},
        {"doc_id": 1, "target": "#### 3", "arguments": [], "resps": [["The answer is 4."]]},
    ]
    path = tmp_path / "samples_gsm8k_x.jsonl"
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines), encoding="utf-8")
    out = tmp_path / "o"
    assert main(["eval", f"import=[{path}]", "import_budget=64", f"output_dir={out}", "eval.bootstrap=20"]) == 0
    seq = json.loads((out / "curves.json").read_text())["sequential"]["gsm8k"]
    # 1 of 2 right: Wilson at p = 1/2, n = 2 is 1/2 ± z / (2·sqrt(2 + z²)).
    half = 1.959963984540054 / (2 * math.sqrt(2 + 1.959963984540054**2))
    assert seq["budget"] == [64] and seq["accuracy"] == [0.5]
    assert seq["ci_low"] == [pytest.approx(0.5 - half)] and seq["ci_high"] == [pytest.approx(0.5 + half)]


GOOD = b'{"doc_id": 0, "target": "1", "resps": [["The answer is 1."]]}\n'


@pytest.mark.parametrize(
    "content, message",
    [
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR\xff\xd8", "Line 1 of {path} is not UTF-8 text"),
        (
            GOOD + GOOD.replace(b"0", b"1") + b'{"doc_id": 2, "resps": [["caf\xe9"]]}\n',
            "Line 3 of {path} is not UTF-8",
        ),
        (GOOD + b'{"doc_id": 1, "target": "1", "resps": null}\n', "Line 2 of {path}: it has no 'resps' list."),
        (b'{"doc_id": 0, "target": "1", "resps": [[null]]}\n', "Line 1 of {path}: its 'resps' are not lists of"),
        (b'{"doc_id": 0, "target": "1", "resps": [[]]}\n', "Line 1 of {path}: its 'resps' hold no response."),
        (b'{"doc_id": 0, "target": "1", "resps": [["a", 7]]}\n', "Line 1 of {path}: its 'resps' are not lists of"),
        (b'{"doc_id": [0], "target": "1", "resps": [["a"]]}\n', "Line 1 of {path}: its doc_id [0] is not a number"),
    ],
)
def test_unreadable_files_are_refused_naming_file_and_line(tmp_path, capsys, content, message):
    path = tmp_path / "samples_gsm8k_x.jsonl"
    path.write_bytes(content)
    assert main(["eval", f"import=[{path}]", "import_budget=8", f"output_dir={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert message.format(path=path) in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o").exists()
