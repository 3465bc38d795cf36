"""lprecover: prune whole layers out of LLMs, try to recover them, and measure whether test-time scaling came back.

The packages point one way. A module imports only from its own layer or the layers listed before it, and only at
the top of its file (``tests/test_layers.py`` reads every import, those inside functions included):
"""

LAYERS = (
    # plumbing: configs and their validation, atomic writes, logging, readers, the registries, launching, W&B
    ("lprecover.config", "lprecover.atomic", "lprecover.log", "lprecover.readers", "lprecover.registry"),
    ("lprecover.command", "lprecover.launch", "lprecover.tracking"),
    # models: the one way to load one, and layer surgery that keeps the KV cache right
    ("lprecover.modeling", "lprecover.surgery"),
    # measuring: tasks, budget forcing, engines, scoring, scaling metrics, recovery measures and verdicts
    ("lprecover.evaluation", "lprecover.verdict"),
    # pruning criteria and their calibration text; building training data
    ("lprecover.pruning", "data_prep"),
    # recovery: recipes, trainers, distillation, the teacher-logit store
    ("lprecover.recovery",),
    # whole jobs: train, study, compare, export, trace analysis, diagnosis
    (
        "lprecover.train",
        "lprecover.compare",
        "lprecover.export",
        "lprecover.analysis",
        "lprecover.diagnose",
        "lprecover.shipped",
    ),
    ("lprecover.study_variants", "lprecover.study"),
    # plugins: they register into the registries; nothing below names them
    ("lprecover.organism", "lprecover.smollm2"),
    # the one dispatch of every command
    ("lprecover.cli", "lprecover.__main__"),
)
