"""`ascnet-train`: pretrain ASCNet, export its backbone, plot a run's curves.

    ascnet-train pretrain --manifest ucf101.parquet --out runs/r3d18 --epochs 200 --batch-size 64
    torchrun --nproc_per_node 8 -m ascnet.cli.train pretrain --manifest k400.parquet --out runs/k400
    ascnet-train export runs/r3d18 --out r3d18_ascnet.pt
    ascnet-train plot runs/r3d18
"""
from __future__ import annotations

import signal
import sys
import click

from ascnet.checkpoint import CheckpointError, export_backbone
from ascnet.cli.options import config_options, from_options
from ascnet.clips import CLIP_HELP
from ascnet.manifest import ManifestError
from ascnet.preview import PreviewConfig, preview
from ascnet.runlog import plot_run
from ascnet.sampling import SamplingError
from ascnet.train import PretrainConfig, TrainingDiverged, pretrain as run

# every PretrainConfig field is one option, with this help
HELP = {
    **CLIP_HELP,
    "manifest": "parquet manifest written by ascnet-index",
    "out": "run directory (config.json, metrics.jsonl, checkpoints/, curves.png)",
    "data": "manifest: videos; synthetic: random clips, to check the compute path",
    "split": "manifest split to train on",
    "arch": "backbone",
    "width": "backbone base channels (64 = the published network)",
    "proj_dim": "projection/prediction output size",
    "hidden_dim": "MLP hidden size of heads and predictors",
    "scp_weight": "lambda in L = L_acp + lambda L_scp (both means over clips: SCP's weight relative to ACP per clip)",
    "scp_final_ratio": "lambda at the last step as a share of --scp-weight, cosine-annealed from it (1: constant)",
    "scp_start": "step from which SCP enters the loss (-1: once the memory queue is full, as in the paper)",
    "grad_clip": "clip the gradients' global norm to this before each step (0: no clipping)",
    "queue_size": "memory queue entries K",
    "ema_base": "target EMA momentum at step 0 (cosine to --ema-final)",
    "ema_final": "target EMA momentum at the last step",
    "epochs": "epochs over the split",
    "batch_size": "pairs per process (global batch = this x processes)",
    "optimizer": "sgd (the paper's recipe) or adamw (learns faster in short runs of small networks; try --base-lr 0.004)",
    "base_lr": "lr = base-lr x global batch / 64",
    "final_lr_ratio": "cosine ends at lr x this",
    "warmup_epochs": "linear warm-up length",
    "momentum": "SGD momentum (not used by adamw)",
    "weight_decay": "weight decay (decoupled with adamw)",
    "device": "auto picks cuda when present",
    "backend": "decoder backend of the data pipeline",
    "workers": "data loader workers",
    "seed": "seed of weights and sampling",
    "ckpt_every": "checkpoint every N steps",
    "keep_last": "checkpoints to keep",
    "log_every": "log every N steps",
    "compile": "torch.compile the model",
    "max_steps": "if > 0, the run is this many steps (overrides --epochs)",
    "stop_at": "if > 0, checkpoint and stop after this step; continue later with --resume",
    "resume": "continue from the newest checkpoint in --out",
    "progress": "show a progress bar",
    "on_error": "a video that fails to decode: skip it (logged once in OUT/skipped.jsonl, a stand-in drawn from the "
                "seed takes its place, so --resume stays exact) or raise",
    "max_skip_fraction": "stop when more than this share of an epoch's videos failed to decode (the dataset or the "
                         "decoder is broken, not one file)",
    "tensorboard": "TensorBoard event files in --out mirroring metrics.jsonl (view: tensorboard --logdir OUT)",
    "wandb": "also log to this Weights & Biases project (pip install 'ascnet[wandb]'; WANDB_MODE=offline works)",
}


@click.group()
def main():
    """ascnet-train: ASCNet pretraining and its outputs."""


@main.command()
@config_options(PretrainConfig, HELP)
def pretrain(**options):
    """Pretrain ASCNet (ACP + SCP) on a manifest; runs under torchrun as well."""

    cfg = from_options(PretrainConfig, options)
    try:
        summary = run(cfg)
    except (ValueError, CheckpointError, TrainingDiverged, RuntimeError) as e:
        raise click.ClickException(str(e))
    if summary["stopped_by"]:
        click.echo(f"stopped by {summary['stopped_by']} at step {summary['step']}; checkpoint {summary['checkpoint']} "
                   f"(continue with --resume)", err=True)
        sys.exit(128 + signal.Signals[summary["stopped_by"]].value)
    click.echo(f"step {summary['step']}/{summary['total_steps']}  loss {summary['final_loss']:.4f}  "
               f"checkpoint {summary['checkpoint']}  curves {summary['curves']}")


@main.command()
@click.argument("run", type=click.Path(exists=True))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="backbone file to write (.pt)")
def export(run, out):
    """The backbone of RUN (a run directory or one of its checkpoints) as a standalone file."""

    try:
        path = export_backbone(run, out)
    except CheckpointError as e:
        raise click.ClickException(str(e))
    click.echo(f"wrote {path}")


@main.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False))
def plot(run_dir):
    """Write RUN_DIR/curves.png (loss and lr against step) from RUN_DIR/metrics.jsonl."""

    try:
        path = plot_run(run_dir)
    except (FileNotFoundError, ValueError) as e:
        raise click.ClickException(str(e))
    click.echo(f"wrote {path}")


PREVIEW_HELP = {
    **CLIP_HELP,
    "manifest": "parquet manifest from ascnet-index build",
    "out": "image to write (.png, .jpg, .pdf or .svg)",
    "n": "pairs to show",
    "split": "manifest split to draw from",
    "backend": "decoder backend of the data pipeline",
    "seed": "seed of the sampling and augmentation, as in pretraining",
    "epoch": "which epoch's first batch",
    "max_frames": "frames (columns) per clip",
}


@main.command("preview")
@config_options(PreviewConfig, PREVIEW_HELP)
def preview_command(**options):
    """Contact sheet of training pairs (both clips at their speeds, after augmentation)."""

    try:
        path = preview(from_options(PreviewConfig, options))
    except (ManifestError, SamplingError, ValueError) as e:
        raise click.ClickException(str(e))
    click.echo(f"wrote {path}")


if __name__ == "__main__":  # python -m ascnet.cli.train, e.g. under torchrun
    main()
