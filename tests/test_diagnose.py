"""``lprecover diagnose`` on the organism: the sweep equals prune + eval, an identity block does no damage, the NLL's
prefix reuse equals whole forwards, the swap's same-model cells equal each model's own evaluation, and a rerun
redoes nothing."""

import copy
import json
import tempfile

import pytest
import torch

from lprecover.cli import main
from lprecover.diagnose import run as diagnose_run
from lprecover.diagnose.nll import layer_nll, layer_nll_full, traces_from_records
from lprecover.diagnose.swap import SwapEngine
from lprecover.evaluation.budget_forcing import think_format
from lprecover.evaluation.config import EvalConfig
from lprecover.evaluation.records import read_samples
from lprecover.evaluation.run import run_eval
from lprecover.evaluation.tasks import load_task
from lprecover.modeling import ModelConfig, load_model_and_tokenizer
from lprecover.pruning.criteria import skipping
from lprecover.surgery import find_blocks

SETTINGS = ["eval.num_problems=24", "eval.bootstrap=200", "num_traces=12"]
EVAL = ["eval=sequential", "eval.tasks=[organism_long,organism_facts]", "eval.num_problems=24", "eval.bootstrap=200"]
GENERATED = ("task", "problem_id", "budget", "sample", "output", "response", "correct", "thinking_tokens")


def _same_records(a: list[dict], b: list[dict]) -> None:
    key = lambda r: (r["task"], r["problem_id"], r["budget"], r["sample"])  # noqa: E731
    a, b = sorted(a, key=key), sorted(b, key=key)
    assert [{k: r[k] for k in GENERATED} for r in a] == [{k: r[k] for k in GENERATED} for r in b]


@pytest.fixture(scope="module")
def organism(teacher_path):
    return load_model_and_tokenizer(ModelConfig(name_or_path=str(teacher_path), dtype="float32"))


@pytest.fixture(scope="module")
def diagnosed(tmp_path_factory, teacher_path):
    out = tmp_path_factory.mktemp("diagnose") / "out"
    args = ["model=organism", "layers=[2,3]", "pairs=true", "criteria=[shortgpt,magnitude_l1,tail]", "swap_layers=[3]"]
    assert main(["diagnose", *args, *SETTINGS, f"output_dir={out}"]) == 0
    return out, json.loads((out / "diagnosis.json").read_text())


def test_the_sweep_equals_prune_then_eval(diagnosed, tmp_path):
    out, d = diagnosed
    pruned, teacher_eval, pruned_eval = tmp_path / "pruned", tmp_path / "teacher", tmp_path / "eval"
    assert main(["prune", "model=organism", "prune.method=selection", "prune.layers=[3]", f"output_dir={pruned}"]) == 0
    assert main(["eval", "model=organism", *EVAL, f"output_dir={teacher_eval}"]) == 0
    assert (
        main(["eval", f"model.name_or_path={pruned}", "model.dtype=float32", *EVAL, f"output_dir={pruned_eval}"]) == 0
    )
    _same_records(read_samples(out / "layers" / "3" / "eval"), read_samples(pruned_eval))
    t = json.loads((teacher_eval / "summary.json").read_text())
    p = json.loads((pruned_eval / "summary.json").read_text())
    layer = next(e for e in d["layers"] if e["layer"] == 3)
    long, facts = "organism_long", "organism_facts"
    area = t[long]["sequential_area"] - p[long]["sequential_area"]
    slope = t[long]["scaling_slope"] - p[long]["scaling_slope"]
    knowledge = t[facts]["accuracy_at_max_budget"] - p[facts]["accuracy_at_max_budget"]
    assert layer["reasoning_area_drop"]["value"] == pytest.approx(area, abs=1e-12)
    assert layer["reasoning_slope_drop"]["value"] == pytest.approx(slope, abs=1e-12)
    assert layer["knowledge_drop"]["value"] == pytest.approx(knowledge, abs=1e-12)
    assert area > 0.05  # layer 3 matters to long chains: the comparison is of a real drop
    lo, hi = layer["reasoning_area_drop"]["ci_low"], layer["reasoning_area_drop"]["ci_high"]
    assert lo < area < hi
    # the contiguous pair (3, 4) equals prune.layers=[3,4] then eval
    pair_dir, pair_eval = tmp_path / "pair", tmp_path / "pair-eval"
    assert (
        main(["prune", "model=organism", "prune.method=selection", "prune.layers=[3,4]", f"output_dir={pair_dir}"])
        == 0
    )
    assert (
        main(["eval", f"model.name_or_path={pair_dir}", "model.dtype=float32", *EVAL, f"output_dir={pair_eval}"]) == 0
    )
    q = json.loads((pair_eval / "summary.json").read_text())
    pair = next(e for e in d["pairs"] if e["layers"] == [3, 4])
    assert [e["layers"] for e in d["pairs"]] == [[2, 3], [3, 4]]
    assert pair["reasoning_area_drop"]["value"] == pytest.approx(
        t[long]["sequential_area"] - q[long]["sequential_area"], abs=1e-12
    )
    assert pair["knowledge_drop"]["value"] == pytest.approx(
        t[facts]["accuracy_at_max_budget"] - q[facts]["accuracy_at_max_budget"], abs=1e-12
    )
    # the swap's same-model cells are each model's own curve
    curves = d["swap"]["curves"]
    own = {"teacher-thinks_teacher-answers": t, "other-thinks_other-answers": p}
    for cell, summary in own.items():
        assert curves[cell]["area"] == pytest.approx(summary[long]["sequential_area"], abs=1e-12)


def test_swap_records_name_thinker_and_answerer(diagnosed):
    out, d = diagnosed
    rows = [json.loads(line) for line in (out / "swap_samples.jsonl").read_text().splitlines()]
    cells = {(r["thinker"], r["answerer"]) for r in rows}
    assert cells == {("teacher", "teacher"), ("teacher", "other"), ("other", "teacher"), ("other", "other")}
    assert all(r["task"] == "organism_long" for r in rows)
    assert set(d["swap"]) >= {"lost", "answerer_share", "thinker_share", "curves", "models", "hidden_cosine"}
    cosine = d["swap"]["hidden_cosine"]  # the other model is the teacher without layer 3
    assert list(cosine) == ["0", "1", "2", "4", "5"]
    assert all(cosine[o] == pytest.approx(1, abs=1e-6) for o in "012")  # the teacher's own blocks, same input
    assert cosine["4"] < 0.999 and cosine["5"] < 0.999


def test_diagnosis_fields(diagnosed):
    out, d = diagnosed
    assert [e["layer"] for e in d["layers"]] == [2, 3]
    for e in d["layers"]:
        assert set(e["trace_nll_increase"]) == {"total", "thinking", "answer"}
        assert e["trace_nll_increase"]["total"]["value"] > 0  # removing a trained layer makes its traces less likely
    assert set(d["criteria"]) == {"shortgpt", "magnitude_l1", "tail"}
    tail = d["criteria"]["tail"]
    assert tail["direction"] == -1 and tail["first_pick"] == 3 and len(tail["scores"]) == 6
    assert tail["spearman_reasoning"]["value"] is None  # two swept layers: a rank correlation is undefined
    assert (out / "damage.png").stat().st_size > 5000 and "## Think/answer swap" in (out / "report.md").read_text()


def test_a_rerun_redoes_nothing(diagnosed, monkeypatch, capsys):
    out, d = diagnosed

    def boom(*args, **kwargs):
        raise AssertionError("a finished piece was recomputed")

    for name in ("run_eval", "layer_nll", "criterion_scores", "evaluate_removed"):
        monkeypatch.setattr(diagnose_run, name, boom)
    args = ["model=organism", "layers=[2,3]", "pairs=true", "criteria=[shortgpt,magnitude_l1,tail]", "swap_layers=[3]"]
    assert main(["diagnose", *args, *SETTINGS, f"output_dir={out}"]) == 0
    again = json.loads((out / "diagnosis.json").read_text())
    assert again["layers"] == d["layers"] and again["criteria"] == d["criteria"] and again["pairs"] == d["pairs"]


def test_prefix_reuse_equals_whole_forwards(organism):
    model, tok = organism
    fmt = think_format(tok, default_answer_prefix="")  # the organism answers at once
    task = load_task("organism_long", 6)
    cfg = EvalConfig(tasks=["organism_long"], num_problems=6, parallel=False, budgets=[40])
    records = [r for r in _eval(model, tok, cfg) if r["budget"] == 40]
    prompts = {p.id: p.prompt for p in task.problems}
    traces = traces_from_records(records, prompts, tok, fmt, 6, 256)
    assert len(traces) == 6
    layers = [*range(6), (0, 1), (2, 3), (4, 5)]
    fast = layer_nll(model, tok, traces, layers, batch_size=4)
    slow = layer_nll_full(model, tok, traces, layers, batch_size=4, skip=skipping)
    for key in ["teacher", *layers]:
        for a, b in zip(fast[key], slow[key]):
            for part in ("total", "thinking", "answer"):
                assert a[part] == pytest.approx(b[part], rel=1e-5, abs=1e-6)
    assert fast[0][0]["total"] > fast["teacher"][0]["total"] + 0.1


def _eval(model, tok, cfg):
    with tempfile.TemporaryDirectory() as tmp:
        run_eval(model, tok, cfg, tmp)
        return read_samples(tmp)


def test_swap_of_two_copies_equals_the_model_alone(organism):
    model, tok = organism
    cfg = EvalConfig(tasks=["organism_long"], num_problems=16, parallel=False)
    alone = _eval(model, tok, cfg)
    swapped = _eval(SwapEngine(model, copy.deepcopy(model), tok), tok, cfg)
    _same_records(alone, swapped)


def test_an_identity_block_does_no_damage_and_is_ranked_first(organism, tmp_path):
    model, tok = organism
    ident = copy.deepcopy(model)
    block = find_blocks(ident)[1][2]
    with torch.no_grad():  # its attention and MLP add zero to the residual stream: the block is an exact identity
        block.self_attn.o_proj.weight.zero_()
        block.mlp.down_proj.weight.zero_()
    path = tmp_path / "ident"
    ident.save_pretrained(path)
    tok.save_pretrained(path)
    out = tmp_path / "out"
    args = [f"model.name_or_path={path}", "model.dtype=float32", "layers=[1,2,3]", "criteria=[shortgpt,magnitude_l2]"]
    assert (
        main(["diagnose", *args, "eval.num_problems=16", "eval.bootstrap=100", "num_traces=8", f"output_dir={out}"])
        == 0
    )
    d = json.loads((out / "diagnosis.json").read_text())
    layer = {e["layer"]: e for e in d["layers"]}
    zero = layer[2]
    assert zero["reasoning_area_drop"]["value"] == 0 and zero["reasoning_slope_drop"]["value"] == 0
    assert zero["knowledge_drop"]["value"] == 0
    assert all(
        zero["trace_nll_increase"][p]["value"] == pytest.approx(0, abs=1e-6) for p in ("total", "thinking", "answer")
    )
    assert layer[1]["trace_nll_increase"]["total"]["value"] > 0.01 < layer[3]["trace_nll_increase"]["total"]["value"]
    influence = d["criteria"]["shortgpt"]
    assert influence["scores"]["2"] == pytest.approx(0, abs=1e-6) and influence["first_pick"] == 2
    assert influence["first_pick_rank"]["nll"] == 1.0
    assert influence["spearman_nll"]["value"] is not None


def test_generation_can_be_added_to_an_nll_only_diagnosis(tmp_path):
    out = tmp_path / "out"
    args = ["model=organism", "layers=[3]", "criteria=[magnitude_l1]", *SETTINGS, f"output_dir={out}"]
    assert main(["diagnose", *args, "generation=false"]) == 0
    first = json.loads((out / "diagnosis.json").read_text())
    assert first["layers"][0]["reasoning_area_drop"] is None
    assert main(["diagnose", *args]) == 0
    second = json.loads((out / "diagnosis.json").read_text())
    assert second["layers"][0]["reasoning_area_drop"]["value"] > 0.05
    assert second["layers"][0]["trace_nll_increase"] == first["layers"][0]["trace_nll_increase"]


def test_swap_with_a_checkpoint_equals_swap_with_the_same_layers_removed(diagnosed, tmp_path):
    _, d = diagnosed
    pruned, out = tmp_path / "pruned", tmp_path / "out"
    assert main(["prune", "model=organism", "prune.method=selection", "prune.layers=[3]", f"output_dir={pruned}"]) == 0
    args = ["model=organism", "layers=[3]", "criteria=[tail]", f"swap_with={pruned}", *SETTINGS, f"output_dir={out}"]
    assert main(["diagnose", *args]) == 0
    s = json.loads((out / "diagnosis.json").read_text())["swap"]
    assert s["models"]["other"] == str(pruned)
    assert s["curves"] == d["swap"]["curves"] and s["hidden_cosine"] == pytest.approx(d["swap"]["hidden_cosine"])
    assert s["thinker_share"] == d["swap"]["thinker_share"]
