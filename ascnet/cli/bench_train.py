"""`ascnet-bench train`: training step time, real batches from the pipeline against synthetic
batches on the device (`ascnet.bench.train`).

    ascnet-bench train --manifest ucf101.parquet --device cuda --batch-size 64
    ascnet-bench train --manifest demo.parquet --device cpu --width 16 --clip-len 8 --crop-size 64 --batch-size 8
"""
import click

from ascnet.bench.train import BenchTrainConfig, run_train_bench
from ascnet.cli.bench import ALLOW_BUSY, run_bench
from ascnet.cli.options import config_options, from_options
from ascnet.clips import CLIP_HELP

HELP = {
    **CLIP_HELP,
    "manifest": "parquet manifest of the real side (empty: the synthetic side only)",
    "split": "manifest split to load",
    "arch": "backbone",
    "width": "backbone base channels (64 = the published network)",
    "batch_size": "pairs per step",
    "backend": "decoder backend of the data pipeline",
    "device": "auto picks cuda when present",
    "workers": "data loader workers",
    "steps": "timed steps per side",
    "warmup": "untimed steps per side, before the timed ones",
    "compile": "torch.compile the model",
    "seed": "seed of weights and sampling",
    "threads": "torch intra-op threads on the CPU (0: torch's default)",
    "allow_busy": ALLOW_BUSY,
}


@click.command("train")
@config_options(BenchTrainConfig, HELP)
@click.option("--json-out", type=click.Path(dir_okay=False), default=None, help="also write the result as JSON here")
def train(json_out, **options):
    """Training step: real batches from the pipeline vs synthetic batches on the device."""
    run_bench(run_train_bench, from_options(BenchTrainConfig, options), errors=(ValueError, RuntimeError, ImportError),
              json_out=json_out)
