"""`ascnet-bench index`: index throughput against a sequential ffprobe loop, side by side."""
import sys

import click

from ascnet.bench.index import BenchIndexConfig, run_index_bench
from ascnet.cli.bench import ALLOW_BUSY
from ascnet.cli.options import config_options, from_options
from ascnet.tools.layouts import LayoutError

HELP = {
    "layout": "how ROOT is organised and annotated",
    "workers": "Probe processes for ascnet-index build.",
    "split": "Split number (UCF-101 / HMDB-51).",
    "annotations": "Annotation folder or file.",
    "generate": "First write this many small synthetic videos into the empty ROOT (folder layout).",
    "repeat": "Rounds; each method keeps its best time.",
    "allow_busy": ALLOW_BUSY,
}


@click.command(name="index")
@config_options(BenchIndexConfig, HELP, arguments=("root",))
def index(**options):
    """Videos/s of `ascnet-index build` against one ffprobe after the other over ROOT's videos."""
    cfg = from_options(BenchIndexConfig, options)
    try:
        run_index_bench(cfg, echo=click.echo)
    except LayoutError as e:
        click.echo(f"ascnet-bench index: {e}", err=True)
        sys.exit(2)
    except ValueError as e:  # a loaded machine, an option out of range
        raise click.ClickException(str(e)) from e
