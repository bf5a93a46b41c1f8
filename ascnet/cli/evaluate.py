"""`ascnet-eval`: the paper's evaluation protocols (linear probe, retrieval, fine-tuning).

Each command parses its options into one config dataclass and calls one library function,
which writes results.json, results.md and a plot in --out; the command prints the table.
"""
from __future__ import annotations

import sys

import click

ARCHS = ["r3d18", "r2plus1d18", "s3dg"]
BACKENDS = ["auto", "nvdec", "dali-cpu", "pyav"]


def _ints(ctx, param, value):
    if value is None:
        return None
    try:
        out = tuple(int(v) for v in str(value).split(",") if v.strip())
    except ValueError:
        out = ()
    if not out or min(out) < 1:
        raise click.BadParameter(f"'{value}' is not a comma-separated list of positive integers (e.g. 1,5,10)")
    return out


def _crops(ctx, param, value):
    out = tuple(v.strip() for v in value.split(",") if v.strip())
    bad = [v for v in out if v not in ("center", "three", "ten")]
    if bad or not out:
        raise click.BadParameter(f"{bad or value!r}: allowed crops are center, three, ten (comma-separated)")
    return out


def _crop_scale(ctx, param, value):
    from ascnet.pipelines.augment import check_crop_scale  # numpy only

    try:
        return check_crop_scale(tuple(float(v) for v in str(value).split(",") if v.strip()))
    except ValueError as e:
        raise click.BadParameter(f"{value!r}: give min,max area fractions, e.g. 0.4,1.0 ({e})") from None


def _flip_p(ctx, param, value):
    from ascnet.pipelines.augment import check_flip_p  # numpy only

    try:
        return check_flip_p(value)
    except ValueError as e:
        raise click.BadParameter(str(e)) from None


def encoder_and_data_options(f):
    """Options every command shares: what to evaluate, on which manifest, how to decode."""
    options = [
        click.option("--init", "--checkpoint", "inits", multiple=True, metavar="CKPT|RUN_DIR|random",
                     help="A checkpoint (run or exported backbone), a run directory (its newest checkpoint) or 'random'; repeat to compare in one table."),
        click.option("--arch", type=click.Choice(ARCHS), default=None, help="Architecture of a random init (a checkpoint names its own)."),
        click.option("--width", type=int, default=None, help="Base channel count of a random init (64 = the published network)."),
        click.option("--manifest", required=True, type=click.Path(dir_okay=False), help="Parquet manifest from 'ascnet-index build'."),
        click.option("--train-split", default="train", show_default=True),
        click.option("--test-split", default="test", show_default=True),
        click.option("--out", required=True, type=click.Path(file_okay=False), help="Output directory."),
        click.option("--clip-len", type=int, default=16, show_default=True),
        click.option("--crop-size", type=int, default=112, show_default=True),
        click.option("--backend", type=click.Choice(BACKENDS), default="auto", show_default=True),
        click.option("--batch-size", type=int, default=8, show_default=True),
        click.option("--workers", type=int, default=2, show_default=True),
        click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
    ]
    for option in reversed(options):
        f = option(f)
    return f


def frozen_options(f):
    f = click.option("--cache-dir", default=None, type=click.Path(file_okay=False),
                     help="Feature cache (default OUT/cache); share it between linear and retrieval.")(f)
    return click.option("--clips-per-video", type=int, default=10, show_default=True,
                        help="Evenly spaced clips per video, center crop.")(f)


def run(fn, cfg):
    """Call the library function; turn input errors into one readable line and exit code 2."""
    from ascnet.checkpoint import CheckpointError
    from ascnet.evaluate.features import EvalError
    from ascnet.manifest import ManifestError

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
@encoder_and_data_options
@frozen_options
@click.option("--optimizer", type=click.Choice(["lbfgs", "adam"]), default="lbfgs", show_default=True)
@click.option("--epochs", type=int, default=30, show_default=True, help="L-BFGS outer steps or Adam passes.")
@click.option("--lr", type=float, default=None, help="Default 1.0 (lbfgs) / 1e-3 (adam).")
@click.option("--weight-decay", type=float, default=1e-3, show_default=True)
@click.option("--classifier-batch-size", type=int, default=256, show_default=True)
def linear(inits, **kw):
    """Linear probe on frozen features: clip- and video-level top-1/top-5.

    Example: ascnet-eval linear --init runs/k400/checkpoint.pt --init random --manifest ucf101.parquet --out runs/eval/linear
    """
    from ascnet.evaluate.linear import LinearConfig, linear_probe

    run(linear_probe, LinearConfig(inits=tuple(inits), **kw))


@main.command()
@encoder_and_data_options
@frozen_options
@click.option("--ks", callback=_ints, default="1,5,10,20,50", show_default=True, help="Comma-separated k values.")
def retrieval(inits, **kw):
    """Video retrieval: test videos query train videos by cosine; top-k accuracy.

    Example: ascnet-eval retrieval --init runs/k400/checkpoint.pt --init random --manifest ucf101.parquet --out runs/eval/retrieval
    """
    from ascnet.evaluate.retrieval import RetrievalConfig, retrieval as run_retrieval

    run(run_retrieval, RetrievalConfig(inits=tuple(inits), **kw))


@main.command()
@encoder_and_data_options
@click.option("--epochs", type=int, default=10, show_default=True)
@click.option("--lr", type=float, default=0.05, show_default=True, help="SGD learning rate (cosine to 0).")
@click.option("--momentum", type=float, default=0.9, show_default=True)
@click.option("--weight-decay", type=float, default=5e-4, show_default=True)
@click.option("--augment/--no-augment", default=True, show_default=True,
              help="Random resized crop, flip and colour jitter on training clips (off: short side resized, centre crop).")
@click.option("--crop-scale", callback=_crop_scale, default="0.4,1.0", show_default=True, metavar="MIN,MAX",
              help="Random resized crop: min,max fraction of the frame's area (with --augment).")
@click.option("--flip-p", type=float, callback=_flip_p, default=0.5, show_default=True,
              help="Horizontal flip probability per training clip (with --augment).")
@click.option("--test-clips", type=int, default=10, show_default=True, help="Evenly spaced clips per test video.")
@click.option("--test-crops", callback=_crops, default="center,three,ten", show_default=True)
@click.option("--checkpoint-every", type=int, default=0, show_default=True, help="Steps between checkpoints (0: each epoch).")
@click.option("--stop-after-steps", type=int, default=0, help="Stop (with a checkpoint) after this many steps of this invocation.")
@click.option("--resume/--no-resume", default=False, help="Continue from OUT/checkpoint.pt exactly.")
@click.option("--on-error", type=click.Choice(["skip", "raise"]), default="skip", show_default=True,
              help="A training video that fails to decode: skip it (logged once in OUT/skipped.jsonl, a stand-in takes "
                   "its place) or stop. The test set is always complete or the run says which videos it lacks.")
@click.option("--max-skip-fraction", type=click.FloatRange(0, 1), default=0.01, show_default=True,
              help="Stop when more than this share of an epoch's videos failed to decode.")
def finetune(inits, **kw):
    """Fine-tune the encoder with a new linear head; test with N clips x crops.

    SIGTERM or Ctrl-C during training writes OUT/checkpoint.pt at the end of the step and exits
    with 128 + the signal's number; --resume continues the run exactly.

    Example: ascnet-eval finetune --init runs/k400/checkpoint.pt --manifest ucf101.parquet --out runs/eval/finetune
    """
    import signal

    from ascnet.evaluate.finetune import FinetuneConfig, finetune as run_finetune

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

    run(finetune_or_exit, FinetuneConfig(init=inits[0], **kw))


@main.command()
@click.argument("run_dirs", nargs=-1, required=True, type=click.Path(file_okay=False))
def compare(run_dirs):
    """Print several results side by side (a markdown table).

    Example: ascnet-eval compare runs/eval/linear runs/eval/retrieval runs/eval/finetune
    """
    from ascnet.evaluate.report import compare_table

    try:
        click.echo(compare_table(list(run_dirs)), nl=False)
    except (FileNotFoundError, ValueError) as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)


if __name__ == "__main__":
    main()
