"""The benchmarks and the GPU check; nothing heavy is imported here. Each benchmark runs the
peers' approach beside ours in one run and reports ratios; the `ascnet-bench` commands call
them, never the other way round.

- `common`:    the quiet-machine rule (`check_quiet`, `--allow-busy`), the `Meter` CPU
               accounting, the environment header, the table layout
- `baseline`:  the peers' loaders (decord, torchcodec; per-frame or transforms.v2
               augmentation) in a DataLoader, pairs and evaluation clips
- `decode`:    `ascnet-bench decode`: pairs/s per decoder backend in interleaved rounds, the
               ceiling (the fastest loader's pairs replayed decode-only), a frame check
- `eval`:      `ascnet-bench eval`: feature-extraction videos/s per backend
- `train`:     `ascnet-bench train`: training step, real against synthetic batches
- `index`:     `ascnet-bench index`: `ascnet-index build` against a sequential ffprobe loop
- `growth`:    `ascnet-bench growth`: time per video and peak memory of every stage as the
               dataset grows (UCF-101- and Kinetics-sized), `replicate_manifest`
- `gpu_check`: the GPU check's parts, run by `gpu_check.sh` (from a plain checkout), which
               unpacks wheel bundles with `offline.py` (standard library only)
"""
