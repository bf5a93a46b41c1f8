"""`ascnet-bench`: benchmarks, each comparing backends side by side in one run."""
import click

from ascnet.cli.lazy import LazyGroup


@click.group(
    cls=LazyGroup,
    lazy_commands={
        "decode": ("ascnet.cli.bench_decode", "decode"),
        "train": ("ascnet.cli.bench_train", "train"),
        "index": ("ascnet.cli.bench_index", "index"),
        "eval": ("ascnet.cli.bench_eval", "eval"),
    },
)
def main():
    """ascnet-bench: decode and training throughput benchmarks."""
