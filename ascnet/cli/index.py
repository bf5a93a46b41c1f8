"""`ascnet-index`: build, show and validate parquet manifests of video datasets."""
import sys

import click

from ascnet.manifest import ManifestError


def _fail(message: str) -> None:
    click.echo(f"ascnet-index: {message}", err=True)
    sys.exit(2)


@click.group()
def main():
    """ascnet-index: dataset layout -> probed parquet manifest (build / show / validate)."""


@main.command()
@click.argument("root", type=click.Path(file_okay=False))
@click.option("--layout", required=True, type=click.Choice(["ucf101", "hmdb51", "kinetics", "folder"]),
              help="How ROOT is organised and annotated.")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="Manifest to write (.parquet).")
@click.option("--split", default=1, show_default=True, help="Split number (UCF-101 / HMDB-51: 1..3).")
@click.option("--annotations", type=click.Path(), default=None,
              help="Annotation folder or file; default: the layout's usual place in or beside ROOT.")
@click.option("--workers", default=2, show_default=True, help="ffprobe/ffmpeg processes at once.")
@click.option("--min-frames", default=16, show_default=True, help="Fewer decodable frames -> too_short.")
@click.option("--max-decode-errors", default=0, show_default=True,
              help="More decoder errors (mid-stream damage) -> corrupt; raise it to accept slightly damaged files.")
@click.option("--transcode", type=click.Choice(["h264", "vp9"]), default=None,
              help="Also write decoder-friendly copies: h264 (NVDEC) or vp9 (DALI CPU).")
@click.option("--transcode-dir", type=click.Path(file_okay=False), default=None, help="Where the copies go.")
@click.option("--short-side", type=int, default=None, help="Resize the copies to this short side (pixels).")
@click.option("--strict", is_flag=True, help="Exit 1 when any video is not ok.")
@click.option("--no-progress", "progress", is_flag=True, flag_value=False, default=True, help="No progress bar.")
def build(**options):
    """Index the videos under ROOT into a manifest; unchanged files of an earlier run are reused."""
    from ascnet.tools.index import IndexConfig, build_index, summary
    from ascnet.tools.layouts import LayoutError

    cfg = IndexConfig(**options)
    try:
        result = build_index(cfg)
    except (LayoutError, ManifestError) as e:
        _fail(str(e))
    click.echo(f"probed {result.probed}, reused {result.reused} unchanged; wrote {result.path}")
    click.echo(summary(result.manifest))
    if cfg.strict and result.not_ok:
        click.echo(f"ascnet-index: {result.not_ok} video(s) not ok (--strict)", err=True)
        sys.exit(1)


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
def show(manifest):
    """Print the summary of MANIFEST."""
    from ascnet.manifest import Manifest
    from ascnet.tools.index import summary

    try:
        m = Manifest.from_parquet(manifest)
    except ManifestError as e:
        _fail(str(e))
    click.echo(summary(m))


@main.command()
@click.argument("manifest", type=click.Path(dir_okay=False))
def validate(manifest):
    """Check MANIFEST's schema and that its files are present and unchanged; one line per problem."""
    from ascnet.tools.index import validate as check

    problems = check(manifest)
    for p in problems:
        click.echo(p)
    if problems:
        click.echo(f"ascnet-index: {len(problems)} problem(s) in {manifest}", err=True)
        sys.exit(1)
    click.echo(f"{manifest}: ok")


from ascnet.tools.demo_data import demo_data  # noqa: E402

main.add_command(demo_data, name="demo-data")
