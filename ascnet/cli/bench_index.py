"""`ascnet-bench index`: index throughput against a sequential ffprobe loop, side by side."""
import sys

import click


@click.command(name="index")
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--layout", default="folder", show_default=True,
              type=click.Choice(["ucf101", "hmdb51", "kinetics", "folder"]))
@click.option("--workers", default=2, show_default=True, help="Probe processes for ascnet-index build.")
@click.option("--split", default=1, show_default=True, help="Split number (UCF-101 / HMDB-51).")
@click.option("--annotations", type=click.Path(), default=None, help="Annotation folder or file.")
@click.option("--generate", default=0, show_default=True,
              help="First write this many small synthetic videos into the empty ROOT (folder layout).")
@click.option("--repeat", default=3, show_default=True, help="Rounds; each method keeps its best time.")
def index(**options):
    """Videos/s of `ascnet-index build` against one ffprobe after the other over ROOT's videos."""
    from ascnet.tools.bench_index import BenchIndexConfig, bench_index, device, format_table
    from ascnet.tools.layouts import LayoutError

    cfg = BenchIndexConfig(**options)
    try:
        rows = bench_index(cfg)
    except LayoutError as e:
        click.echo(f"ascnet-bench index: {e}", err=True)
        sys.exit(2)
    click.echo(f"device: {device()}")
    click.echo(f"root: {cfg.root} ({cfg.layout}); best of {cfg.repeat} interleaved rounds")
    click.echo(format_table(rows))
