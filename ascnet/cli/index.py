"""`ascnet-index`: build, show and validate parquet manifests of video datasets."""
import sys

import click

from ascnet.cli.options import config_options, from_options
from ascnet.manifest import Manifest, ManifestError
from ascnet.tools.index import BuildStopped, IndexConfig, build_index, summary, validate as check
from ascnet.tools.layouts import LayoutError


def _fail(message: str) -> None:
    click.echo(f"ascnet-index: {message}", err=True)
    sys.exit(2)


@click.group()
def main():
    """ascnet-index: dataset layout -> probed parquet manifest (build / show / validate)."""


HELP = {
    "root": "",
    "layout": "how ROOT is organised and annotated",
    "out": "manifest to write (.parquet)",
    "split": "split number (UCF-101 / HMDB-51: 1..3)",
    "annotations": "annotation folder or file; default: the layout's usual place in or beside ROOT",
    "workers": "ffprobe/ffmpeg processes at once (the local pool; a Dask cluster runs one per worker thread)",
    "min_frames": "fewer decodable frames -> too_short",
    "max_decode_errors": "more decoder errors (mid-stream damage) -> corrupt; raise it to accept slightly damaged files",
    "transcode": "also write decoder-friendly copies: h264 (NVDEC) or vp9 (DALI CPU)",
    "transcode_dir": "where the copies go",
    "short_side": "resize the copies to this short side (pixels)",
    "probe_timeout": "seconds one ffprobe/ffmpeg run may take; past it the process is killed and the file is "
                     "corrupt (a re-run with a higher limit tries it again)",
    "save_every": "seconds between saves of the finished rows to OUT.partial/ (a killed build resumes from them)",
    "scheduler": "a Dask scheduler's address (tcp://host:8786): run the per-file work on its cluster; "
                 "needs ascnet[dist]",
    "strict": "exit 1 when any video is not ok",
    "progress": "show a progress bar",
}


@main.command()
@config_options(IndexConfig, HELP, arguments=("root",), required=("layout", "out"))
def build(**options):
    """Index the videos under ROOT into a manifest; unchanged files of an earlier run are reused,
    and so are the rows a stopped or killed build saved."""

    cfg = from_options(IndexConfig, options)
    try:
        result = build_index(cfg)
    except (LayoutError, ManifestError) as e:
        _fail(str(e))
    except BuildStopped as e:
        click.echo(f"ascnet-index: {e}", err=True)
        sys.exit(128 + e.signum)
    click.echo(f"probed {result.probed}, reused {result.reused} unchanged; wrote {result.path}")
    click.echo(summary(result.manifest))
    if cfg.strict and result.not_ok:
        click.echo(f"ascnet-index: {result.not_ok} video(s) not ok (--strict)", err=True)
        sys.exit(1)


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
def show(manifest):
    """Print the summary of MANIFEST."""

    try:
        m = Manifest.from_parquet(manifest)
    except ManifestError as e:
        _fail(str(e))
    click.echo(summary(m))


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
def validate(manifest):
    """Check MANIFEST's schema and that its files are present and unchanged; one line per problem."""

    problems = check(manifest)
    for p in problems:
        click.echo(p)
    if problems:
        click.echo(f"ascnet-index: {len(problems)} problem(s) in {manifest}", err=True)
        sys.exit(1)
    click.echo(f"{manifest}: ok")


from ascnet.tools.demo_data import demo_data  # noqa: E402

main.add_command(demo_data, name="demo-data")
