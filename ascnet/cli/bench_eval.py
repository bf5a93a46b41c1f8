"""`ascnet-bench eval`: feature-extraction videos/s per decoder backend beside the peers' loader."""
import click

from ascnet.manifest import ManifestError


@click.command(name="eval")
@click.argument("manifest", type=click.Path(dir_okay=False))
@click.option("--backends", default="nvdec,dali-cpu,pyav,baseline", show_default=True,
              help="comma-separated: nvdec, dali-cpu, pyav, baseline")
@click.option("--split", default="test", show_default=True)
@click.option("--arch", type=click.Choice(["r3d18", "r2plus1d18", "s3dg"]), default="r3d18", show_default=True)
@click.option("--width", type=click.IntRange(min=1), default=64, show_default=True, help="64 = the published network")
@click.option("--clip-len", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--crop-size", type=click.IntRange(min=8), default=112, show_default=True)
@click.option("--clips-per-video", type=click.IntRange(min=1), default=10, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True, help="clips per forward")
@click.option("--workers", type=click.IntRange(min=0), default=2, show_default=True, help="worker processes, every loader alike")
@click.option("--min-videos", type=click.IntRange(min=1), default=16, show_default=True,
              help="repeat a small split's rows up to this many videos")
@click.option("--rounds", type=click.IntRange(min=1), default=1, show_default=True,
              help="run every backend (and the encoder alone) this many times, interleaved; medians reported")
@click.option("--allow-busy", is_flag=True, help="measure even when the 1-min load average is above 0.5 (rows marked busy)")
@click.option("--json", "json_path", default=None, type=click.Path(dir_okay=False), help="also write the results here (atomic)")
def eval(manifest, backends, split, arch, width, clip_len, crop_size, clips_per_video, batch_size, workers, min_videos, rounds,  # noqa: A001
         allow_busy, json_path):
    """Evaluation feature extraction (videos/s) per backend on MANIFEST, side by side, with ratios to the baseline.

    Example: ascnet-bench eval data/ucf101.parquet --split test --backends pyav,baseline --width 16
    """
    from ascnet.evaluate.bench import EvalBenchConfig, run_eval_bench

    names = tuple(b.strip() for b in backends.split(",") if b.strip())
    cfg = EvalBenchConfig(manifest=manifest, backends=names, split=split, arch=arch, width=width, clip_len=clip_len,
                          crop_size=crop_size, clips_per_video=clips_per_video, batch_size=batch_size, workers=workers,
                          min_videos=min_videos, rounds=rounds, allow_busy=allow_busy, json=json_path)
    try:
        run_eval_bench(cfg, echo=click.echo)
    except (ManifestError, ValueError) as e:
        raise click.ClickException(str(e)) from e
    if json_path:
        click.echo(f"wrote {json_path}")
