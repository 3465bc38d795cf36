"""Recovery, pruning, organism and study settings refused up front: through the real command line, each bad value
exits 2 with one line naming the key, no traceback, and nothing written (no output folder, no teacher built).

One test per kind of mistake: a value outside its declared range or choices, a number that is not finite, two
fields out of order, a combination of fields that leaves nothing to train, a setting the model's layer count rules
out, and a study whose lists or recipes are wrong. Every one fails before a model loads.
"""

import pytest
from tiny_models import tiny_model

from lprecover.cli import main


@pytest.fixture
def run(tmp_path, monkeypatch, capsys):
    """Run ``lprecover ARGS`` in an empty folder; return (exit status, stderr) after checking nothing was written."""
    work, cache = tmp_path / "work", tmp_path / "cache"
    work.mkdir()
    monkeypatch.chdir(work)
    monkeypatch.setenv("LPRECOVER_CACHE", str(cache))  # where the organism teacher would be built
    monkeypatch.setenv("LPRECOVER_RUNS", str(work / "runs"))

    def _run(*args: str) -> tuple[int, str]:
        code = main([*args, f"output_dir={work / 'out'}"] if args[0] != "organism" else list(args))
        err = capsys.readouterr().err
        assert not any(work.iterdir()), f"wrote {sorted(p.name for p in work.iterdir())}"
        assert not (cache / "organism").exists(), "built the organism teacher"
        return code, err

    return _run


def assert_refused(code: int, err: str, command: str, *fragments: str) -> None:
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert "Traceback" not in err and len(lines) == 1, err
    assert lines[0].startswith(f"lprecover {command}: "), lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


@pytest.fixture(scope="module")
def six_layers(tmp_path_factory):
    """A local checkpoint folder of 6 decoder layers: its config is all a layer-count check reads."""
    path = tmp_path_factory.mktemp("six_layers")
    tiny_model("qwen3").config.save_pretrained(path)
    return path


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["train", "recipe=sft_short", "train.logging_steps=0"], "train.logging_steps must be at least 1, got 0"),
        (["train", "recipe=sft_short", "train.save_steps=-1"], "train.save_steps must be at least 0, got -1"),
        (["train", "recipe=sft_short", "evaluate_at=[0.5,1.5]"], "every value of evaluate_at must lie in (0, 1)"),
        (["train", "recipe=sft_short", "train.lr_scheduler=cosine_with_min_lr"], "train.lr_scheduler must be one"),
        (["prune", "prune.method=laco", "prune.laco_threshold=2"], "prune.laco_threshold must lie in [-1, 1]"),
        (["prune", "prune.method=laco", "prune.laco_merge_count=0"], "prune.laco_merge_count must be at least 1"),
        (["organism", "build", "organism.num_heads=0"], "organism.num_heads must be at least 1, got 0"),
        (["organism", "build", "organism.fact_share=1"], "organism.fact_share must lie in [0, 1)"),
        (["teacher-logits", "recipe=distill", "store.k=0"], "store.k must be at least 1, got 0"),
    ],
)
def test_a_value_outside_its_range_or_choices_is_named(run, args, fragment):
    assert_refused(*run(*args), args[0], fragment)


@pytest.mark.parametrize("value", ["inf", "nan"])
def test_a_number_that_is_not_finite_is_refused(run, value):
    """An infinite temperature trained a NaN model before; now it is refused before anything loads."""
    code, err = run("train", "recipe=distill", f"distill.temperature={value}")
    assert_refused(code, err, "train", "distill.temperature must be a finite number")


def test_fields_out_of_order_name_both_keys(run):
    code, err = run("organism", "build", "organism.min_chain=8", "organism.max_chain=2")
    assert_refused(code, err, "organism", "organism.min_chain (8) must be at most organism.max_chain (2)")


@pytest.mark.parametrize(
    "args, terms",
    [
        (["recipe=distill", "distill.kd_weight=0"], "distill.kd_weight + distill.ce_weight"),
        (
            ["recipe=distill_hidden", "distill.kd_weight=0", "distill.hidden_weight=0"],
            "distill.kd_weight + distill.ce_weight + distill.hidden_weight",
        ),
    ],
)
def test_a_loss_with_every_weight_zero_is_refused(run, args, terms):
    """With every weight of the method's loss at 0 there is no loss: it crashed at step 0, after config.yaml."""
    code, err = run("train", *args)
    assert_refused(code, err, "train", terms, "no loss to train on")


def test_settings_the_model_cannot_take_are_refused_before_loading(run, six_layers):
    model = f"model.name_or_path={six_layers}"
    code, err = run("prune", model, "prune.method=laco", "prune.laco_merge_count=5")
    assert_refused(code, err, "prune", "prune.laco_merge_count=5 leaves no layer", "at most 4")
    code, err = run("study", model, "prune_layers=[2,6]")
    assert_refused(code, err, "study", "prune_layers [6] would remove every layer", "at most 5")
    # The organism's layer count is known without building it.
    code, err = run("study", "prune_layers=[2,6]")
    assert_refused(code, err, "study", "prune_layers [6] would remove every layer: organism has 6")


@pytest.mark.parametrize(
    "args, fragment",
    [
        (["recipes=[]"], "recipes must not be empty"),
        (["recipes=[sft_short,sft_short]"], "recipes names 'sft_short' more than once"),
        (["prune_layers=[2,2]"], "prune_layers names 2 more than once"),
        (["evaluate_at=[1.5]"], "every value of evaluate_at must lie in (0, 1)"),
        (["launch_timeout_minutes=0"], "launch_timeout_minutes must be at least 1"),
        (["recipes=[sft_short]", "overrides=[train.logging_steps=0]"], "recipe sft_short: train.logging_steps"),
        (["recipes=[distill]", "overrides=[distill.kd_weight=0]"], "recipe distill: method distill trains on"),
    ],
)
def test_a_study_checks_every_recipe_before_its_first_stage(run, args, fragment):
    """The study's lists, and each recipe's run as the study would make it, are judged before the study folder,
    the teacher or a pruned model is written."""
    assert_refused(*run("study", *args), "study", fragment)
