"""`ascnet-bench decode`: pairs/s per decoder backend beside the peers' loader and the ceiling."""
import click

from ascnet.bench.decode import DecodeBenchConfig, run_decode_bench
from ascnet.cli.bench import ALLOW_BUSY, run_bench
from ascnet.cli.options import config_options, from_options
from ascnet.clips import CLIP_HELP

HELP = {
    **CLIP_HELP,
    "backends": "comma-separated: nvdec, dali-cpu, dali-cpu-repeats (indices sent with their repeats), pyav, "
                "baseline (decord), torchcodec, torchcodec-approx (seek mode approximate), torchvision (torchcodec + "
                "transforms.v2 per clip), ceiling",
    "split": "manifest split to load",
    "batch_size": "pairs per batch",
    "seconds": "timed seconds per run, after 2 x workers + 1 warm-up batches",
    "rounds": "rounds of runs, every loader at every worker count once per round, interleaved; medians reported",
    "seed": "seed of the sampling",
    "check_pairs": "pairs per backend whose frames are checked against the sampling (0: none)",
    "min_videos": "repeat a small split's rows up to this many, so an epoch outlasts warm-up and timing",
    "allow_busy": ALLOW_BUSY,
    "json": "also write the results here (atomic)",
    "warmup": "batches discarded before timing (default 2 x workers + 1, what a DataLoader has ready; 1: the old rule)",
    "across_epochs": "time on into the next epochs when one ends (with a small --min-videos: what a short epoch costs)",
    "peers_persistent": "the peers' DataLoader keeps its workers between epochs (--no-peers-persistent: PyTorch's default)",
}


@click.command(name="decode")
@config_options(DecodeBenchConfig, HELP, skip=("workers",), arguments=("manifest",))
@click.option("--workers", default=None, help="comma-separated worker counts to sweep, each loader reported at its "
              "best (default: 1,2,3,4 on 2 CPUs, up to twice the CPUs elsewhere)")
def decode(workers, **options):
    """Decode + augment throughput of each backend on MANIFEST, side by side, with ratios to the fastest peer.

    Backends that cannot run here (nvdec without a GPU, dali-cpu on codecs other than
    VP8/VP9/MJPEG) are listed as skipped with the reason. Example:

    \b
        ascnet-bench decode ucf101.parquet --backends pyav,baseline,ceiling --seconds 15 --rounds 3 --json bench.json
    """
    try:
        counts = tuple(int(w) for w in workers.split(",")) if workers else None
    except ValueError:
        raise click.BadParameter(f"'{workers}': give worker counts separated by commas, e.g. 1,2,4", param_hint="--workers")
    cfg = from_options(DecodeBenchConfig, options, workers=counts)
    run_bench(run_decode_bench, cfg)
    if cfg.json:
        click.echo(f"wrote {cfg.json}")
