"""`ascnet-eval`: the paper's evaluation protocols (linear probe, retrieval, fine-tuning).

Each command parses its options into one config dataclass and calls one library function,
which writes results.json, results.md and a plot in --out; the command prints the table.
"""
from __future__ import annotations

import sys

import click

from ascnet.checkpoint import CheckpointError
from ascnet.cli.options import config_options, from_options
from ascnet.clips import CLIP_HELP
from ascnet.evaluate.features import EvalError
from ascnet.evaluate.finetune import FinetuneConfig, finetune as run_finetune
from ascnet.evaluate.linear import LinearConfig, linear_probe
from ascnet.evaluate.report import compare_table
from ascnet.evaluate.retrieval import RetrievalConfig, retrieval as run_retrieval
from ascnet.manifest import ManifestError

# the help of every config field the commands take as an option
HELP = {
    **CLIP_HELP,
    "clip_len": "frames per clip (evaluation clips are at speed 1)",
    "arch": "architecture of a random init (a checkpoint names its own)",
    "width": "base channel count of a random init (64 = the published network)",
    "manifest": "parquet manifest from 'ascnet-index build'",
    "train_split": "split the classifier is trained on (retrieval: the gallery)",
    "test_split": "split it is scored on (retrieval: the queries)",
    "out": "output directory",
    "backend": "decoder backend of the data pipeline",
    "batch_size": "clips per batch",
    "workers": "data loader workers",
    "device": "auto picks cuda when present",
    "seed": "seed of a random init and of the training",
    "clips_per_video": "evenly spaced clips per video, center crop",
    "cache_dir": "feature cache (default OUT/cache); share it between linear and retrieval",
    "optimizer": "classifier optimizer",
    "epochs": "L-BFGS outer steps or Adam passes (finetune: epochs over the train split)",
    "lr": "learning rate (linear: default 1.0 for lbfgs, 1e-3 for adam; finetune: SGD, cosine to 0)",
    "weight_decay": "weight decay",
    "classifier_batch_size": "classifier mini-batch (adam)",
    "ks": "comma-separated k values",
    "momentum": "SGD momentum",
    "test_clips": "evenly spaced clips per test video",
    "test_crops": "crops per test clip, comma-separated (a result per mode)",
    "checkpoint_every": "steps between checkpoints (0: each epoch)",
    "stop_after_steps": "stop (with a checkpoint) after this many steps of this invocation",
    "resume": "continue from OUT/checkpoint.pt exactly",
    "on_error": "a training video that fails to decode: skip it (logged once in OUT/skipped.jsonl, a stand-in takes "
                "its place) or stop; the test set is always complete or the run says which videos it lacks",
    "max_skip_fraction": "stop when more than this share of an epoch's videos failed to decode",
    "tensorboard": "TensorBoard event files in --out: metrics, config, plots (view: tensorboard --logdir OUT)",
    "wandb": "also log to this Weights & Biases project (pip install 'ascnet[wandb]'; WANDB_MODE=offline works)",
}
REQUIRED = ("manifest", "out")
# evaluation reads clips at speed 1 with its own crops: the pairs' settings do not apply
EVAL_CLIP_SKIP = ("speeds", "rate", "base_fps", "augment", "crop_scale", "flip_p")

init_option = click.option(
    "--init", "--checkpoint", "inits", multiple=True, metavar="CKPT|RUN_DIR|random[:SEED]",
    help="A checkpoint (run or exported backbone), a run directory (its newest checkpoint), 'random' (--seed) or "
         "'random:SEED' (a random network of its own seed); repeat to compare in one table.")


def run(fn, cfg):
    """Call the library function; turn input errors into one readable line and exit code 2."""

    try:
        _, table = fn(cfg)
    except (EvalError, ManifestError, CheckpointError, FileNotFoundError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    click.echo(table, nl=False)
    click.echo(f"results: {cfg.out}/results.json, {cfg.out}/results.md")


@click.group()
def main():
    """ascnet-eval: linear probe, retrieval and fine-tuning of a video encoder."""


@main.command()
@init_option
@config_options(LinearConfig, HELP, skip=("inits",) + EVAL_CLIP_SKIP, required=REQUIRED)
def linear(inits, **kw):
    """Linear probe on frozen features: clip- and video-level top-1/top-5.

    Example: ascnet-eval linear --init runs/k400/checkpoint.pt --init random --manifest ucf101.parquet --out runs/eval/linear
    """

    run(linear_probe, from_options(LinearConfig, kw, inits=tuple(inits)))


@main.command()
@init_option
@config_options(RetrievalConfig, HELP, skip=("inits",) + EVAL_CLIP_SKIP, required=REQUIRED)
def retrieval(inits, **kw):
    """Video retrieval: test videos query train videos by cosine; top-k accuracy.

    Example: ascnet-eval retrieval --init runs/k400/checkpoint.pt --init random --manifest ucf101.parquet --out runs/eval/retrieval
    """

    run(run_retrieval, from_options(RetrievalConfig, kw, inits=tuple(inits)))


@main.command()
@init_option
@config_options(FinetuneConfig, HELP, skip=("init", "speeds", "rate", "base_fps"), required=REQUIRED)
def finetune(inits, **kw):
    """Fine-tune the encoder with a new linear head; test with N clips x crops.

    SIGTERM or Ctrl-C during training writes OUT/checkpoint.pt at the end of the step and exits
    with 128 + the signal's number; --resume continues the run exactly.

    Example: ascnet-eval finetune --init runs/k400/checkpoint.pt --manifest ucf101.parquet --out runs/eval/finetune
    """
    import signal


    if len(inits) != 1:
        click.echo("error: finetune takes exactly one --init (CKPT or random); compare runs with 'ascnet-eval compare'", err=True)
        sys.exit(2)

    def finetune_or_exit(cfg):
        results, table = run_finetune(cfg)
        if results.get("stopped_by"):
            click.echo(f"stopped by {results['stopped_by']} at step {results['stopped_at_step']}; checkpoint "
                       f"{results['checkpoint']} (continue with --resume)", err=True)
            sys.exit(128 + signal.Signals[results["stopped_by"]].value)
        if results.get("rank", 0) != 0:  # under torchrun rank 0 alone tests and writes the results
            sys.exit(0)
        return results, table

    run(finetune_or_exit, from_options(FinetuneConfig, kw, init=inits[0]))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def compare(run_dirs):
    """Print several results side by side (a markdown table).

    Example: ascnet-eval compare runs/eval/linear runs/eval/retrieval runs/eval/finetune
    """

    try:
        click.echo(compare_table(list(run_dirs)), nl=False)
    except (FileNotFoundError, ValueError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
