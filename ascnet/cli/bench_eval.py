"""`ascnet-bench eval`: feature-extraction videos/s per decoder backend beside the peers' loader."""
import click

from ascnet.bench.eval import EvalBenchConfig, run_eval_bench
from ascnet.cli.bench import ALLOW_BUSY, run_bench
from ascnet.cli.options import config_options, from_options
from ascnet.clips import CLIP_HELP

HELP = {
    **CLIP_HELP,
    "backends": "comma-separated: nvdec, dali-cpu, pyav, baseline (decord), torchcodec",
    "split": "manifest split to extract",
    "arch": "backbone",
    "width": "64 = the published network",
    "clips_per_video": "evenly spaced clips per video",
    "batch_size": "clips per forward",
    "workers": "worker processes, every loader alike",
    "min_videos": "repeat a small split's rows up to this many videos",
    "rounds": "run every backend (and the encoder alone) this many times, interleaved; medians reported",
    "allow_busy": ALLOW_BUSY,
    "json": "also write the results here (atomic)",
}


@click.command(name="eval")
@config_options(EvalBenchConfig, HELP, arguments=("manifest",))
def eval(**options):  # noqa: A001
    """Evaluation feature extraction (videos/s) per backend on MANIFEST, side by side, with ratios to the baseline.

    Example: ascnet-bench eval data/ucf101.parquet --split test --backends pyav,baseline --width 16
    """
    cfg = from_options(EvalBenchConfig, options)
    run_bench(run_eval_bench, cfg)
    if cfg.json:
        click.echo(f"wrote {cfg.json}")
