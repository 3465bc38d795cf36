"""Acceptance of the whole mission on the organism: the default ``lprecover study``, run for real (slow).

Each test is one outcome the default study delivers on this organism, at the thresholds of issue #13: a teacher
curve that rises over four budgets, pruning one or two layers keeping the memorised facts while long chains
collapse, recipes that separate with intervals at most 0.3 wide (short answers bring back nothing, the best recipe
at least 70% of the slope, and the report says so), recovery along training, and a rerun that writes the same
summary. That the teacher
trains at every seed and thread count is documented by ``bench/organism_seeds.py``; that guessing scores 1/53 by
``tests/test_organism.py``.
"""

import json
import shutil

import pytest
from report_checks import assert_report_is_the_curves

from lprecover.cli import main as cli

# A tier of its own (about 15 minutes on 2 cores): `pytest tests -m acceptance`; CI runs it after the suite.
pytestmark = pytest.mark.acceptance


@pytest.fixture(scope="module")
def study(tmp_path_factory, teacher_path):
    out = tmp_path_factory.mktemp("acceptance") / "study"
    assert cli(["study", f"output_dir={out}"]) == 0
    return out


def _curve(out, folder, task="organism_long"):
    return json.loads((out / folder / "curves.json").read_text())["sequential"][task]


def _summary(out):
    return json.loads((out / "comparison" / "summary.json").read_text())


def _row(summary, run, task="organism_long"):
    return next(r for r in summary["runs"] if r["run"] == run)["tasks"][task]


@pytest.mark.slow
def test_teacher_scales_over_four_budgets(study):
    """The teacher rises by at least 0.6, with at least four budgets on the rising part."""
    acc = _curve(study, "eval-teacher")["accuracy"]
    assert acc[-1] - acc[0] >= 0.6, acc
    rises = sum(b - a >= 0.05 for a, b in zip(acc, acc[1:]))
    assert rises >= 3, f"rising part spans {rises + 1} budgets: {acc}"


@pytest.mark.slow
@pytest.mark.parametrize("removed,allowed", [(1, 0.05), (2, 0.10)])
def test_pruning_keeps_the_facts_while_long_chains_collapse(study, removed, allowed):
    """The paper's pattern: the memorised facts within 0.05 of the teacher with one layer removed and within 0.10
    with two; long chains down by 0.5 at full budget and the scaling slope below a quarter of the teacher's. The
    report says the pattern holds for each pruned model."""
    summary = _summary(study)
    pruned = f"eval-pruned-{removed}"
    facts = [_curve(study, f, "organism_facts")["accuracy"][-1] for f in ("eval-teacher", pruned)]
    long = [_curve(study, f)["accuracy"][-1] for f in ("eval-teacher", pruned)]
    assert facts[0] >= 0.9 and facts[0] - facts[1] <= allowed and long[0] - long[1] >= 0.5, (facts, long)
    name = f"pruned-{removed} (shortgpt)"
    assert _row(summary, name)["scaling_slope"] < 0.25 * _row(summary, "teacher")["scaling_slope"]
    assert summary["control_task"] == "organism_facts"
    sentence = next(s for s in summary["knowledge_vs_reasoning"] if s.startswith(name + ":"))
    assert sentence.endswith("as the paper found."), sentence
    assert sentence in (study / "comparison" / "report.md").read_text()


@pytest.mark.slow
def test_recipes_separate_and_short_answers_do_not_restore_scaling(study):
    """Short-answer SFT brings back at most 10% of the slope and ranks last, the best recipe at least 70%; the report ranks the recipes with
    intervals at most 0.3 wide, the ranking is settled somewhere (one interval lies above the next), and the report
    says plainly whether any recipe brought back 70% of the slope."""
    summary = _summary(study)
    short = _row(summary, "sft_short")
    assert short["slope_ratio_to_teacher"]["value"] <= 0.10, short["slope_ratio_to_teacher"]
    assert short["verdict"] == "not_returned"
    assert any(v.startswith("sft_short on organism_long") and "did not return" in v for v in summary["verdicts"])
    ranked = summary["ranking"]["organism_long"]
    assert len(ranked) == 6 and ranked[-1]["run"] != ranked[0]["run"]
    assert {r["ranked_by"] for r in ranked} == {"area_recovered_share"}
    shares = [r["area_recovered_share"] for r in ranked]
    assert [s["value"] for s in shares] == sorted((s["value"] for s in shares), reverse=True)
    widths = {r["run"]: s["ci_high"] - s["ci_low"] for r, s in zip(ranked, shares)}
    assert max(widths.values()) <= 0.3, f"95% intervals wider than 0.3: {widths}"
    assert any(r["separated_from_next"] for r in ranked), "no recipe's interval lies above the next one's"
    assert ranked[-1]["run"] == "sft_short" and ranked[0]["slope_ratio_to_teacher"]["value"] >= 0.7, ranked
    # Issue #13 aims at one recipe reaching 70% of the teacher's slope; whether one did, the report says plainly.
    best = max(r["slope_ratio_to_teacher"]["value"] for r in ranked)
    leader = summary["slope_leader"]["organism_long"]
    assert ("no recipe reached 70%" in leader) == (best < 0.7), (best, leader)
    report = (study / "comparison" / "report.md").read_text()
    assert "Recipes ranked by organism_long area share" in report and leader in report


@pytest.mark.slow
def test_recovery_against_training_tokens(study):
    """Each recipe evaluated at eight points from 1/32 of its budget to all of it; tokens rise along the points;
    tokens and compute to 50% and 90% of the loss in every recipe's row, and their section in the report."""
    summary = _summary(study)
    for row in summary["runs"]:
        if row["kind"] != "recovered":
            continue
        points = row["tasks"]["organism_long"]["progress"]
        assert len(points) == 8, (row["run"], points)
        assert all(k in row["tasks"]["organism_long"] for k in ("tokens_to_50", "compute_to_50", "tokens_to_90"))
        tokens = [p["training_tokens"] for p in points]
        assert all(t is not None for t in tokens) and tokens == sorted(tokens) and tokens[0] < tokens[-1], tokens
        assert all(p["area_recovered_share"]["value"] is not None for p in points)
    # Every run of the study is scored on the same problems, so every pair is compared on the same resamples; on
    # the organism on-policy distillation reaches 50% of the lost area first against every other recipe.
    pairs = summary["pairs_to_reach"]["organism_long"]["tokens_to_50"]
    assert pairs and all(p["paired"] for p in pairs)
    assert all(p["first_share"] >= 0.97 for p in pairs if p["settled"])
    onpolicy = [p for p in pairs if "distill_onpolicy" in (p["faster"], p["slower"])]
    assert len(onpolicy) == 5 and all(p["faster"] == "distill_onpolicy" and p["settled"] for p in onpolicy), onpolicy
    report = (study / "comparison" / "report.md").read_text()
    assert "recovery against training tokens" in report and "tokens and compute to recover" in report
    assert (study / "variants" / "report.md").is_file()  # sft_longcot with and without replay


@pytest.mark.slow
def test_report_numbers_are_the_curves_numbers(study):
    assert assert_report_is_the_curves(study) == 9 * 5, "nine runs, five budgets each"


@pytest.mark.slow
def test_a_second_study_from_clean_data_gives_the_same_curves(study, tmp_path, monkeypatch):
    """The study again for two of its recipes (fresh output folder and data cache, the same teacher): pruning,
    recovery data, training and evaluation give the same curves, byte for byte once folder paths are set aside, for
    the teacher, both pruned models and both recipes, one that returns and one that does not. (Two recipes, not
    six: what this checks is that nothing in the pipeline depends on a cache or a run before it.)"""
    from lprecover.config import cache_root

    clean = tmp_path / "cache"
    clean.mkdir()
    (clean / "organism").symlink_to(cache_root() / "organism")  # the same teacher; no cached recovery data
    monkeypatch.setenv("LPRECOVER_CACHE", str(clean))
    again = tmp_path / "study"
    assert cli(["study", "recipes=[sft_short,sft_longcot]", "replay_recipes=[]", f"output_dir={again}"]) == 0
    stages = ["eval-teacher", "eval-pruned-1", "eval-pruned-2", "recover-sft_short/eval", "recover-sft_longcot/eval"]
    for stage in stages:
        first = (study / stage / "curves.json").read_text().replace(str(study), "STUDY")
        second = (again / stage / "curves.json").read_text().replace(str(again), "STUDY")
        assert first == second, stage
    shutil.rmtree(again)


@pytest.mark.slow
def test_distillation_from_a_stored_top_8_recovers_as_online_distillation_does(study, tmp_path):
    """The study's distill recipe again, reading the teacher's top 8 of 104 tokens (float16) from a store instead
    of running the teacher: its area share lands inside the online run's 95% interval."""
    from dataclasses import fields

    from lprecover.config import load_config
    from lprecover.evaluation.recovery_measures import recovery_measures
    from lprecover.recovery.outputs import EVAL_DIR
    from lprecover.recovery.recipe import RecoveryConfig
    from lprecover.recovery.teacher_logits import StoreSettings, TeacherLogitsConfig, write_store
    from lprecover.study import StudyConfig, recipe_run
    from lprecover.train import recover

    cfg = load_config(StudyConfig, [f"output_dir={study}"])
    run = recipe_run(cfg, "distill", study / "pruned-2", tmp_path / "recover-distill-stored")
    run.evaluate_at, run.report_to = [], "none"
    kept = {f.name: getattr(run, f.name) for f in fields(RecoveryConfig)}
    store = write_store(TeacherLogitsConfig(**kept, store=StoreSettings(out=str(tmp_path / "store"), k=8)))
    run.distill.teacher_logits = str(store)
    assert recover(run) == 0

    base = (study / "eval-teacher", study / "eval-pruned-2")
    online = recovery_measures(*base, study / "recover-distill" / EVAL_DIR)["organism_long"]["sequential"]
    stored = recovery_measures(*base, run.output_dir + "/" + EVAL_DIR)["organism_long"]["sequential"]
    online, stored = online["area_recovered_share"], stored["area_recovered_share"]
    assert online["ci_low"] - 1e-9 <= stored["value"] <= online["ci_high"] + 1e-9, (stored, online)
