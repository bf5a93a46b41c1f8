"""`ascnet-bench growth`: time per video and peak memory of every stage as the dataset grows
(`ascnet.bench.growth`); `ascnet-bench replicate`: a Kinetics-sized manifest from a few real files."""
import click

from ascnet.bench.growth import GrowthConfig, replicate_manifest, run_growth
from ascnet.cli.bench import ALLOW_BUSY, run_bench
from ascnet.cli.options import config_options, from_options
from ascnet.manifest import Manifest, ManifestError

HELP = {
    "manifest": "real probed rows to replicate for the manifest, ddp, pretrain and features stages",
    "ucf_root": "a UCF-101-shaped set for the index stage (python -m ascnet.tools.ucf_like --out DIR)",
    "stages": "comma-separated stages to run",
    "sizes": "manifest rows per size (manifest, ddp, pretrain, features)",
    "index_sizes": "videos of --ucf-root indexed per size (0: all of them)",
    "workers": "decoder / probe workers",
    "steps": "pretraining steps per size",
    "feature_videos": "videos whose features are extracted per size (the cache key covers all rows)",
    "out": "folder for growth.json and growth.png",
    "allow_busy": ALLOW_BUSY,
}


@click.command(name="growth")
@config_options(GrowthConfig, HELP)
def growth(**options):
    """Time per video and peak memory (main process and each decoder worker) of every stage at every size.

    Example (Kinetics-sized manifests from the real clips, and a UCF-101-shaped set):

    \b
        ascnet-bench growth --manifest real.parquet --ucf-root data/ucf_like --out runs/growth
    """
    run_bench(run_growth, from_options(GrowthConfig, options), errors=(ManifestError, ValueError, RuntimeError))


@click.command(name="replicate")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--rows", default=240000, show_default=True, help="rows of the new manifest (Kinetics-400: ~240,000)")
@click.option("--classes", default=400, show_default=True, help="labels spread over this many classes")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="manifest to write (.parquet)")
def replicate(manifest, rows, classes, out):
    """A manifest of ROWS rows made of MANIFEST's usable rows under distinct video_ids, its files cycled."""
    try:
        path = replicate_manifest(Manifest.from_parquet(manifest), rows, classes=classes).write(out)
    except ManifestError as e:
        raise click.ClickException(str(e)) from e
    click.echo(f"wrote {path} ({rows} rows)")
