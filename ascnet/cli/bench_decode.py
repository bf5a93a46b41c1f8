"""`ascnet-bench decode`: pairs/s per decoder backend beside the peers' loader and the ceiling."""
import click

from ascnet.manifest import ManifestError


@click.command(name="decode")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--backends", default="nvdec,dali-cpu,pyav,baseline,torchcodec,ceiling", show_default=True,
              help="comma-separated: nvdec, dali-cpu, dali-cpu-repeats (indices sent with their repeats), pyav, "
                   "baseline (decord), torchcodec, ceiling")
@click.option("--split", default="train", show_default=True)
@click.option("--batch-size", default=8, show_default=True, type=click.IntRange(min=1))
@click.option("--workers", default=None, help="comma-separated worker counts to sweep, each loader reported at its "
              "best (default: 1,2,3,4 on 2 CPUs, up to twice the CPUs elsewhere)")
@click.option("--seconds", default=10.0, show_default=True, type=click.FloatRange(min=0, min_open=True),
              help="timed seconds per backend, after its first batch")
@click.option("--clip-len", default=16, show_default=True, type=click.IntRange(min=1))
@click.option("--crop-size", default=112, show_default=True, type=click.IntRange(min=8))
@click.option("--seed", default=0, show_default=True)
@click.option("--check-pairs", default=16, show_default=True, type=click.IntRange(min=0),
              help="pairs per backend whose frames are checked against the sampling (0: none)")
@click.option("--min-videos", default=256, show_default=True, type=click.IntRange(min=1),
              help="repeat a small split's rows up to this many, so an epoch outlasts the timing")
@click.option("--ceiling-files", default=16, show_default=True, type=click.IntRange(min=1),
              help="distinct files decoded for the ceiling")
@click.option("--allow-busy", is_flag=True, help="measure even when the 1-min load average is above 0.5 (rows marked busy)")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="also write the results here (atomic)")
def decode(manifest, backends, split, batch_size, workers, seconds, clip_len, crop_size, seed, check_pairs, min_videos,
           ceiling_files, allow_busy, json_path):
    """Decode + augment throughput of each backend on MANIFEST, side by side, with ratios to the baseline.

    Backends that cannot run here (nvdec without a GPU, dali-cpu on codecs other than
    VP8/VP9/MJPEG) are listed as skipped with the reason. Example:

    \b
        ascnet-bench decode ucf101.parquet --backends pyav,baseline,ceiling --seconds 30 --json bench.json
    """
    from ascnet.tools.bench_decode import DecodeBenchConfig, run_decode_bench

    names = tuple(b.strip() for b in backends.split(",") if b.strip())
    try:
        counts = tuple(int(w) for w in workers.split(",")) if workers else None
    except ValueError:
        raise click.BadParameter(f"'{workers}': give worker counts separated by commas, e.g. 1,2,4", param_hint="--workers")
    if counts and min(counts) < 1:
        raise click.BadParameter("worker counts must be 1 or more", param_hint="--workers")
    cfg = DecodeBenchConfig(manifest=manifest, backends=names, split=split, batch_size=batch_size, workers=counts,
                            seconds=seconds, clip_len=clip_len, crop_size=crop_size, seed=seed, check_pairs=check_pairs,
                            min_videos=min_videos, ceiling_files=ceiling_files, allow_busy=allow_busy, json=json_path)
    try:
        run_decode_bench(cfg, echo=click.echo)
    except (ManifestError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if json_path:
        click.echo(f"wrote {json_path}")
