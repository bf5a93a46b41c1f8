"""`ascnet-bench`: benchmarks, each comparing backends side by side in one run.

The commands are thin: each builds its config (`ascnet.cli.options`) and calls its benchmark
in `ascnet.bench`."""
import click

from ascnet.cli.lazy import LazyGroup
from ascnet.manifest import ManifestError


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "decode": ("ascnet.cli.bench_decode", "decode"),
        "train": ("ascnet.cli.bench_train", "train"),
        "index": ("ascnet.cli.bench_index", "index"),
        "eval": ("ascnet.cli.bench_eval", "eval"),
        "growth": ("ascnet.cli.bench_growth", "growth"),
        "replicate": ("ascnet.cli.bench_growth", "replicate"),
    },
)
def main():
    """ascnet-bench: decode and training throughput benchmarks."""


def run_bench(run, cfg, errors=(ManifestError, ValueError), **kwargs):
    """`run(cfg, echo=click.echo, **kwargs)`; the errors it names become one message and exit 1."""
    try:
        return run(cfg, echo=click.echo, **kwargs)
    except errors as e:
        raise click.ClickException(str(e)) from e


ALLOW_BUSY = "measure even when the 1-min load average is above 0.5 (rows marked busy)"
