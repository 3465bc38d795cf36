"""``lprecover diagnose``: remove each layer alone and measure what breaks; criterion fidelity; think/answer swap.

    lprecover diagnose model=organism swap_layers=[3,4] output_dir=OUT
    lprecover diagnose model=smollm2_135m generation=false traces=../shared/data/gsm8k/train.jsonl \
        calibration=problems calibration_path=../shared/data/gsm8k/train.jsonl output_dir=OUT
    lprecover diagnose model.name_or_path=PATH task=gsm8k control=mmlu layers=[0,4,8] eval.budgets=[512,1024] \
        output_dir=OUT

Writes diagnosis.json, report.md and damage.png into output_dir. Relaunching resumes: finished layers, criteria and
swap cells are read back, never redone; other settings in the same output_dir are refused (overwrite=true starts
over), except layers, stride, criteria and generation, which add to what is there.
"""

from lprecover.atomic import exclusive_output
from lprecover.config import load_config
from lprecover.diagnose.config import DiagnoseCommand
from lprecover.diagnose.run import diagnose

CONFIG = DiagnoseCommand  # the keys `--help` lists


def main(argv: list[str]) -> int:
    """Run the command on its ``key=value`` arguments (``lprecover.command.run`` adds ``--help`` and error lines)."""
    cfg = load_config(DiagnoseCommand, argv)
    with exclusive_output(cfg.output_dir):  # a second diagnosis into the same folder is refused, not interleaved
        d = diagnose(cfg)
    print(f"wrote {cfg.output_dir}/diagnosis.json, report.md, damage.png ({d['seconds']['total']:.0f} s)")
    return 0
