"""The user's outputs: the comparison of a real (small) study, its W&B runs, exported checkpoints, trace analysis."""

import json
import re

import pytest
import torch
from report_checks import assert_report_is_the_curves
from transformers import AutoModelForCausalLM

from lprecover.analysis import AnalyzeCommand, analyze, loops, marker_counts, repetition_rate, self_bleu
from lprecover.cli import main as cli
from lprecover.compare.discovery import discover
from lprecover.recovery.outputs import load_recovered
from lprecover.study import run_study
from lprecover.tracking import read_offline_run
from lprecover.verdict import VERDICTS


def test_study_stages_are_recognised_by_provenance(mini_study):
    out, _ = mini_study
    runs = {p.name: discover(p) for p in [out / "eval-teacher", out / "eval-pruned-1", out / "eval-pruned-2"]}
    assert runs["eval-teacher"].kind == "teacher"
    assert runs["eval-pruned-1"].kind == "pruned" and len(runs["eval-pruned-1"].removed_layers) == 1
    assert runs["eval-pruned-2"].kind == "pruned" and len(runs["eval-pruned-2"].removed_layers) == 2
    lora = discover(out / "recover-lora_longcot")
    assert lora.kind == "recovered" and lora.recipe == "lora_longcot"
    assert lora.kept_layers == runs["eval-pruned-2"].kept_layers and lora.training_tokens > 0


def test_recovery_is_scored_along_training(mini_study):
    """evaluate_at=[0.25, 0.5] of 20 steps: models saved at steps 5 and 10 (full weights and LoRA adapters), each
    evaluated and scored; the report and summary put recovery against training tokens."""
    out, _ = mini_study
    summary = json.loads((out / "comparison" / "summary.json").read_text())
    for name in ("sft_short", "lora_longcot"):
        run = out / f"recover-{name}"
        records = [json.loads((run / f"model-step-{s}" / "recovery.json").read_text()) for s in (5, 10)]
        assert [r["steps"] for r in records] == [5, 10]
        # Each saved point records its compute: FLOPs = tokens * FLOPs per token (no generation in these recipes).
        spent = [r["compute"] for r in records]
        assert all(c["flops"] == c["tokens"] * c["flops_per_token"] > 0 for c in spent), spent
        assert spent[0]["tokens"] < spent[1]["tokens"] and spent[0]["train_seconds"] > 0
        early, _ = load_recovered(run, name="model-step-5")
        final, _ = load_recovered(run)
        changed = [n for n, p in early.state_dict().items() if not torch.equal(p, final.state_dict()[n])]
        assert changed, f"{name}: the model at step 5 is the final model"
        points = next(r for r in summary["runs"] if r["run"] == name)["tasks"]["organism_long"]["progress"]
        assert [p["step"] for p in points] == [5, 10, None]
        tokens = [p["training_tokens"] for p in points]
        assert 0 < tokens[0] < tokens[1] < tokens[2], tokens
        assert all(p["area_recovered_share"]["value"] is not None for p in points)
        assert (run / "eval-step-5" / "curves.json").exists() and not json.loads(
            (run / "eval-step-5" / "curves.json").read_text()
        )["parallel"], "points along training evaluate the sequential curve only"
    report = (out / "comparison" / "report.md").read_text()
    assert "## organism_long: recovery against training tokens" in report
    assert "## Recipes ranked by organism_long area share" in report
    assert "## organism_long: tokens and compute to recover" in report
    row = next(r for r in summary["runs"] if r["run"] == "lora_longcot")["tasks"]["organism_long"]
    assert {"tokens_to_50", "compute_to_50", "tokens_to_90", "compute_to_90"} <= set(row)
    assert set(summary["ranking_to_reach"]["organism_long"]) == {"tokens_to_50", "compute_to_50"}
    assert (out / "comparison" / "seconds.json").is_file()


def test_report_numbers_equal_summary_and_curves(mini_study):
    out, _ = mini_study
    summary = json.loads((out / "comparison" / "summary.json").read_text())
    assert (out / "comparison" / "comparison.png").stat().st_size > 10_000
    rows = {r["run"]: r for r in summary["runs"]}
    assert {"teacher", "pruned-1 (shortgpt)", "pruned-2 (shortgpt)", "sft_short", "lora_longcot"} == set(rows)
    assert assert_report_is_the_curves(out) == 5 * 3, "every run's three budgets"
    for name in ("sft_short", "lora_longcot"):
        row = rows[name]["tasks"]["organism_long"]
        share = row["area_recovered_share"]
        assert share["value"] is not None and share["ci_low"] <= share["value"] <= share["ci_high"]
        assert row["verdict"] in VERDICTS
        assert any(v.startswith(f"{name} on organism_long (") for v in summary["verdicts"])
    assert summary["control_task"] == "organism_facts"
    assert any("organism_facts accuracy" in s for s in summary["knowledge_vs_reasoning"])
    assert all(r["tasks"]["organism_long"]["control_accuracy"] is not None for r in summary["runs"])


def test_evaluations_log_curves_against_budget_to_wandb(mini_study):
    out, cfg = mini_study
    (run_dir,) = (out / "eval-teacher" / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run["group"] == cfg.group() and run["name"] == f"{cfg.group()}-teacher"
    curve = json.loads((out / "eval-teacher" / "curves.json").read_text())["sequential"]["organism_long"]
    logged = {
        h["eval/organism_long/budget"]: h["eval/organism_long/accuracy"]
        for h in run["history"]
        if "eval/organism_long/accuracy" in h
    }
    assert logged == dict(zip(curve["budget"], curve["accuracy"]))
    (table_row,) = [h for h in run["history"] if "eval/samples/path" in h]
    table = json.loads((run_dir / "files" / table_row["eval/samples/path"]).read_text())
    samples = (out / "eval-teacher" / "samples.jsonl").read_text().splitlines()
    assert len(table["data"]) == table_row["eval/samples/nrows"] == len(samples), "every generation is in the table"
    (train_run,) = (out / "recover-sft_short" / "wandb").glob("offline-run-*")
    assert read_offline_run(train_run)["group"] == cfg.group()


def test_compare_logs_its_figure_to_a_wandb_run(mini_study, tmp_path):
    out, _ = mini_study
    dest = tmp_path / "cmp"
    assert (
        cli(
            [
                "compare",
                f"runs={out}/*",
                f"output_dir={dest}",
                "report_to=wandb",
            ]
        )
        == 0
    )
    (run_dir,) = (dest / "wandb").glob("offline-run-*")
    run = read_offline_run(run_dir)
    assert run["name"].startswith("compare-") and any(k.startswith("comparison/") for h in run["history"] for k in h)
    summary = json.loads((dest / "summary.json").read_text())
    assert {r["run"] for r in summary["runs"]} == {
        "teacher",
        "pruned-1 (shortgpt)",
        "pruned-2 (shortgpt)",
        "sft_short",
        "lora_longcot",
    }


def test_rerun_redoes_nothing(mini_study):
    out, cfg = mini_study
    watched = [
        out / "recover-sft_short" / "model" / "model.safetensors",
        out / "eval-teacher" / "samples.jsonl",
        out / "pruned-2" / "model.safetensors",
    ]
    before = [p.stat().st_mtime_ns for p in watched]
    run_study(cfg)
    assert [p.stat().st_mtime_ns for p in watched] == before


def test_export_merges_lora_and_verifies_the_reload(mini_study, tmp_path):
    out, _ = mini_study
    dest = tmp_path / "export"
    assert cli(["export", f"run={out}/recover-lora_longcot", f"output_dir={dest}"]) == 0
    assert not list(dest.glob("adapter_*")) and (dest / "model.safetensors").exists()
    assert (dest / "chat_template.jinja").exists() and (dest / "generation_config.json").exists()
    exported = AutoModelForCausalLM.from_pretrained(dest).eval()
    cfg = exported.config
    assert cfg.num_hidden_layers == 4 and len(cfg.layer_types) == 4
    assert cfg.lprecover_pruning["removed_layers"] and cfg.lprecover_recovery["recipe"] == "lora_longcot"
    card = (dest / "README.md").read_text()
    summary = json.loads((out / "comparison" / "summary.json").read_text())
    row = next(r for r in summary["runs"] if r["run"] == "lora_longcot")["tasks"]["organism_long"]
    assert card.startswith("---\n") and "recovery-lora_longcot" in card
    assert (
        f"Recovery on `organism_long`: verdict `{row['verdict']}`; area share {row['area_recovered_share']['value']:.2f}"
        in card
    )
    assert (dest / "scaling_curves.png").exists()
    merged, tok = load_recovered(out / "recover-lora_longcot")
    ids = torch.tensor(
        [
            tok.apply_chat_template(
                [{"role": "user", "content": "2a+3b*2"}], add_generation_prompt=True, return_dict=True
            )["input_ids"]
        ]
    )
    with torch.no_grad():
        assert torch.allclose(exported(ids).logits, merged(ids).logits, atol=1e-5)


def test_export_that_fails_verification_leaves_nothing(mini_study, tmp_path, monkeypatch):
    import lprecover.export as export_module

    out, _ = mini_study
    monkeypatch.setattr(export_module, "TOLERANCE", {torch.float32: -1.0})
    dest = tmp_path / "export"
    with pytest.raises(RuntimeError, match="verification failed"):
        export_module.export(export_module.ExportCommand(run=str(out / "recover-sft_short"), output_dir=str(dest)))
    assert not dest.exists() and not list(tmp_path.glob(".export*"))


def test_export_refuses_bad_input(mini_study, tmp_path, capsys):
    import shutil

    out, _ = mini_study
    assert cli(["export", f"run={out}/pruned-2", f"output_dir={tmp_path / 'a'}"]) == 2
    assert "no recovered weights" in capsys.readouterr().err
    orphan = tmp_path / "orphan"
    shutil.copytree(out / "recover-lora_longcot" / "model", orphan / "model")
    record = json.loads((orphan / "model" / "recovery.json").read_text())
    (orphan / "model" / "recovery.json").write_text(json.dumps(record | {"student": str(tmp_path / "gone")}))
    assert cli(["export", f"run={orphan}", f"output_dir={tmp_path / 'b'}"]) == 2
    assert "need their base model" in capsys.readouterr().err
    full = tmp_path / "full"
    full.mkdir()
    (full / "x").write_text("x")
    assert cli(["export", f"run={out}/recover-sft_short", f"output_dir={full}"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert not (tmp_path / "a").exists() and not (tmp_path / "b").exists()


def test_trace_measures_on_known_text():
    looping = "Let me add. " + "The sum is 4 so the sum is 4. " * 12
    assert repetition_rate(looping) > 0.7 and loops(looping)
    varied = "First multiply the two numbers. Then subtract seven from that. Finally divide by three to finish."
    assert repetition_rate(varied) == 0 and not loops(varied)
    assert self_bleu("The answer is four. The answer is four. The answer is four.") == pytest.approx(1.0)
    assert self_bleu(varied) < 0.2
    text = "Wait, let me check this. Alternatively we could verify it. Hmm, wait."
    assert marker_counts(text) == {"reflection": 3, "backtracking": 1, "verification": 2}
    assert marker_counts("await the waiter") == {"reflection": 0, "backtracking": 0, "verification": 0}


def test_an_organism_trace_is_cut_into_its_steps():
    from lprecover.analysis import segments

    assert segments("a-2=1b*2=2c-2=0") == ["a-2=1", "b*2=2", "c-2=0"]
    assert self_bleu("a-2=1a-2=1a-2=1") == pytest.approx(1.0)  # one step, repeated
    assert self_bleu("a-2=1b*2=2c-2=0") < 1.0
    # The 53-symbol organism: letters and digits as results, lower-case symbols too.
    assert segments("a+3=ib-2=gc+4=K") == ["a+3=i", "b-2=g", "c+4=K"]


def test_analyze_reads_lm_eval_log_samples(tmp_path):
    rows = [
        {
            "doc_id": 0,
            "resps": [["Wait, let me check 2+2. It is 4.</think>4"]],
            "filtered_resps": ["4"],
            "exact_match": 1.0,
        },
        {
            "doc_id": 1,
            "resps": [["It is 5. It is 5. It is 5. It is 5. It is 5. It is 5. It is 5. It is 5.</think>5"]],
            "exact_match": 0.0,
        },
    ]
    # The main harness writes each document once per filter: the second filter's lines repeat the same responses.
    rows = [r | {"filter": f} for f in ("strict-match", "flexible-extract") for r in rows]
    path = tmp_path / "samples_gsm8k_cot_2026-01-01T00-00-00.123456.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = analyze(AnalyzeCommand(samples=str(path)))
    a = result["tasks"]["gsm8k_cot"]
    assert a["n"] == 2 and a["accuracy"] == 0.5 and a["reflection_per_trace"] == 0.5
    assert a["correct_mean_length"] < a["incorrect_mean_length"] and a["length_correct_correlation"] < 0
    assert (tmp_path / "analysis.png").exists()


def test_compare_adds_analysis_columns(mini_study, tmp_path):
    out, _ = mini_study
    for folder in ("eval-teacher", "eval-pruned-2"):
        assert cli(["analyze", f"samples={out / folder / 'samples.jsonl'}"]) == 0
    dest = tmp_path / "cmp"
    assert cli(["compare", f"runs=[{out}/eval-teacher,{out}/eval-pruned-2]", f"output_dir={dest}"]) == 0
    report = (dest / "report.md").read_text()
    assert "self-BLEU" in report and "reflection markers/trace" in report
    teacher = json.loads((out / "eval-teacher" / "analysis.json").read_text())["tasks"]["organism_long"]
    row = next(line for line in report.splitlines() if line.startswith("| teacher"))
    assert f"{teacher['self_bleu']:.3f}" in re.split(r"\s*\|\s*", row)


def test_judge_speaks_the_openai_chat_protocol(tmp_path, monkeypatch):
    """A local OpenAI-compatible endpoint: the request carries the model, the trace and the key; counts come back."""
    import threading
    from http.server import BaseHTTPRequestHandler, HTTPServer

    seen = []

    class Endpoint(BaseHTTPRequestHandler):
        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            seen.append((self.path, self.headers["Authorization"], body))
            reply = 'Sure: {"reflection": 2, "backtracking": 1, "verification": 0}'
            data = json.dumps({"choices": [{"message": {"role": "assistant", "content": reply}}]}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args):
            pass

    server = HTTPServer(("127.0.0.1", 0), Endpoint)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setenv("JUDGE_KEY", "sk-test")
    path = tmp_path / "samples.jsonl"
    path.write_text(
        json.dumps({"task": "t", "output": "Wait, 2+2=4.</think>4", "correct": True, "thinking_tokens": 5}) + "\n"
    )
    judge = {
        "judge.url": f"http://127.0.0.1:{server.server_port}/v1",
        "judge.model": "m",
        "judge.api_key_env": "JUDGE_KEY",
    }
    try:
        assert cli(["analyze", f"samples={path}", *(f"{k}={v}" for k, v in judge.items())]) == 0
    finally:
        server.shutdown()
    (route, auth, body), *_ = seen
    assert route == "/v1/chat/completions" and auth == "Bearer sk-test" and body["model"] == "m"
    assert "Wait, 2+2=4." in body["messages"][0]["content"]
    result = json.loads((tmp_path / "analysis.json").read_text())["tasks"]["t"]
    assert result["judge_reflection_per_trace"] == 2 and result["judged"] == 1
    assert "sk-test" not in (tmp_path / "analysis.json").read_text()
