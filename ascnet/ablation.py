"""When does SCP help? The demo's ablation as a measured sweep.

    python -m ascnet.ablation --out runs/ablation [--correlations 0,0.3,0.6] [--seeds 0,1,2]
    python -m ascnet.ablation --out runs/ablation --lambdas 0.5,2 --at 0.6
    python -m ascnet.ablation --out runs/ablation --step-scales 0.5,2 --at 0.6

Each cell is the demo (`ascnet.demo`, its recipe and its steps) at one scene correlation p
(`tools/demo_data.py`: the chance that a video's background is its class's texture family) and
one seed: ASCNet (ACP+SCP), ACP alone (lambda 0) and the random init, each evaluated by the
demo's linear probe and retrieval on the motion label, with `scp_pos_same_class` (the share of
SCP's retrieved positives of the query's class, from the labels, never used in training) over
the last tenth of the steps. `--lambdas` and `--step-scales` add ACP+SCP runs with another
lambda or another number of steps at the correlation `--at` (each against the same seed's
random init and ACP alone at the demo's steps).

A finished cell is a line of OUT/results.jsonl; a second call skips it, so an interrupted
sweep goes on where it stopped and later calls add cells. Every call rewrites OUT/ABLATION.md
(tables, mean and spread over seeds) and its plots from all the lines.
"""
from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import click
import numpy as np

from ascnet.demo import DemoConfig, eval_fields, late_mean, make_data, make_index, run_pretrain, say
from ascnet.evaluate.linear import LinearConfig, linear_probe
from ascnet.evaluate.report import _pyplot, markdown_table, save_figure, write_text_atomic
from ascnet.evaluate.retrieval import RetrievalConfig, retrieval
from ascnet.manifest import Manifest
from ascnet.runlog import read_metrics

def cell_key(p: float, seed: int, variant: str, scp_weight: float, scale: float) -> str:
    return f"p={p:g} seed={seed} {variant} lambda={scp_weight:g} steps x{scale:g}"


def run_cells(out: Path, p: float, seed: int, runs: list[tuple[str, float, float]], base: DemoConfig, done: set) -> list[dict]:
    """Pretrain and evaluate the runs (variant, lambda, multiple of the demo's steps) of one
    (p, seed) not yet done; returns one result row per run."""

    todo = [r for r in runs if cell_key(p, seed, *r) not in done]
    if not todo:
        return []
    cfg = replace(base, out=str(out / f"p{p:g}" / f"seed{seed}"), data=str(out / f"data-p{p:g}"),
                  scene_correlation=p, seed=seed, ablation=False, supervised_epochs=0)
    Path(cfg.out).mkdir(parents=True, exist_ok=True)
    data = make_data(cfg)
    manifest = make_index(replace(cfg, out=str(Path(cfg.out).parent)), data)  # one manifest per p
    inits, metrics, steps = {}, {}, {}
    for variant, scp_weight, scale in todo:
        key = (variant, scp_weight, scale)
        if variant == "random init":
            inits[key] = "random"
            continue
        run_dir = Path(cfg.out) / f"{variant.replace('+', '-').replace(' ', '-')}-l{scp_weight:g}-x{scale:g}"
        say(f"\n== p {p:g}, seed {seed}: {variant}, lambda {scp_weight:g}, steps x{scale:g}")
        run = cfg
        if scale != 1:
            run = replace(cfg, pretrain=replace(cfg.pretrain, max_steps=round(scale * demo_steps(cfg.pretrain, manifest))))
        inits[key] = str(run_pretrain(run, manifest, run_dir, scp_weight))
        rows = read_metrics(run_dir)
        steps[key] = rows[-1]["step"]
        metrics[key] = (late_mean(rows, "scp_pos_same_class"), rows[-1].get("scp_pos_chance"))
    ev = Path(cfg.out) / "eval"
    lin, _ = linear_probe(LinearConfig(**eval_fields(cfg, manifest, tuple(inits.values()), ev / "linear")))
    ret, _ = retrieval(RetrievalConfig(**eval_fields(cfg, manifest, tuple(inits.values()), ev / "retrieval"), ks=(1,)))
    lin_by = {r["init"]: r["metrics"]["video_top1"] for r in lin["rows"]}
    ret_by = {r["init"]: r["metrics"]["top1"] for r in ret["rows"]}
    results = []
    for key, init in inits.items():
        same, chance = metrics.get(key, (float("nan"), None))
        results.append({"key": cell_key(p, seed, *key), "p": p, "seed": seed, "grating_contrast": cfg.grating_contrast,
                        "variant": key[0], "scp_weight": key[1],
                        "scale": key[2], "steps": steps.get(key, 0), "linear_top1": lin_by[init], "retrieval_top1": ret_by[init],
                        "scp_pos_same_class": same, "scp_pos_chance": chance})
    return results


def demo_steps(cfg, manifest: Path) -> int:
    """The steps of the demo's own schedule for this config: max_steps, or its epochs of full batches."""
    if cfg.max_steps:
        return cfg.max_steps

    return cfg.epochs * (len(Manifest.from_parquet(manifest).select("train")) // cfg.batch_size)


def what_the_queue_retrieves(run_dir: str | Path, manifest: str | Path, data_dir: str | Path) -> dict:
    """What SCP's positives share with their queries, read from the last checkpoint's memory queue.

    Every queued clip is a query; its positive is the entry of the same speed from another video
    with the most similar appearance (`MemoryQueue.retrieve`, as in training). Returns, against
    the same for random pairs of queued videos: the share of positives with the query's class,
    background texture family (None without families) and digit; the mean correlation of the
    two backgrounds; the mean distance of the sprite colours (RGB 0..1) and sizes (pixels).
    """
    from ascnet.checkpoint import checkpoint_paths, load
    from ascnet.queue import MemoryQueue
    from ascnet.tools.demo_data import DemoDataConfig, background, video_specs

    state = load(checkpoint_paths(run_dir)[-1])["queue"]
    queue = MemoryQueue(*state["appearance"].shape)
    queue.load_state_dict(state)
    _, valid, index = queue.retrieve(queue.appearance, queue.speed, queue.video)
    stamp = json.loads((Path(data_dir) / "demo_data.json").read_text())
    params = {k: tuple(v) if isinstance(v, list) else v for k, v in stamp.items() if k != "generator_version"}
    by_path = {s["path"]: s for s in video_specs(DemoDataConfig(out=str(data_dir), **params))}
    paths = Manifest.from_parquet(manifest).select("train").df["path"].tolist()  # the loader's video index -> path
    spec = [by_path[paths[v]] if v >= 0 else None for v in queue.video.tolist()]
    queries = [n for n in range(len(spec)) if spec[n] is not None and bool(valid[n])]
    pairs = {"positive": [(n, int(index[n])) for n in queries],
             "random": list(zip(queries, np.random.default_rng(0).permutation(queries).tolist()))}
    seg = lambda s: s["segments"][0]  # noqa: E731
    grounds = {}

    def ground(s):
        if s["path"] not in grounds:
            g = background(np.random.default_rng(seg(s)["seed"]), s["size"], seg(s).get("family")).mean(axis=2)
            grounds[s["path"]] = ((g - g.mean()) / (g.std() + 1e-9)).ravel()
        return grounds[s["path"]]

    measures = {
        "same class": lambda a, b: a["motion"] == b["motion"],
        "same texture family": (lambda a, b: seg(a)["family"] == seg(b)["family"]) if params.get("scene_correlation") else None,
        "same digit": lambda a, b: a["digit"][0] == b["digit"][0],
        "background correlation": lambda a, b: float(np.mean(ground(a) * ground(b))),
        "colour distance": lambda a, b: float(np.linalg.norm(np.subtract(seg(a)["colours"][0], seg(b)["colours"][0]))),
        "size difference (px)": lambda a, b: abs(seg(a)["scale"] - seg(b)["scale"]) * 8,
    }
    return {name: None if f is None else {kind: float(np.mean([f(spec[i], spec[j]) for i, j in pairs[kind]])) for kind in pairs}
            for name, f in measures.items()}


def read_results(out: Path) -> list[dict]:
    path = out / "results.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def append_results(out: Path, rows: list[dict]) -> None:
    with open(out / "results.jsonl", "a") as f:  # one line a cell: a cut-off write loses at most that cell
        for r in rows:
            f.write(json.dumps(r) + "\n")


def mean_sd(vals: list[float]) -> str:
    vals = [v for v in vals if v == v]
    if not vals:
        return "-"
    return f"{np.mean(vals):.1f} ± {np.std(vals):.1f}" if len(vals) > 1 else f"{vals[0]:.1f}"


def summarise(rows: list[dict]) -> dict:
    """(p, variant, lambda, multiple of the demo's steps) -> the cells' values over seeds."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["p"], r["variant"], r["scp_weight"], r["scale"]), []).append(r)
    return groups


def gains(groups: dict, p: float, scp_weight: float, scale: float) -> dict | None:
    """Per seed: ACP+SCP (lambda, steps) minus random init, and minus ACP only (same steps), at p."""
    full = {r["seed"]: r for r in groups.get((p, "ACP+SCP", scp_weight, scale), [])}
    acp = {r["seed"]: r for r in groups.get((p, "ACP only", 0.0, scale), [])}
    rnd = {r["seed"]: r for r in groups.get((p, "random init", 0.0, 1.0), [])}
    seeds = sorted(set(full) & set(rnd))
    if not seeds:
        return None
    g = {m: [full[s][m] - rnd[s][m] for s in seeds] for m in ("linear_top1", "retrieval_top1")}
    g.update({f"vs_acp_{m}": [full[s][m] - acp[s][m] for s in seeds if s in acp] for m in ("linear_top1", "retrieval_top1")})
    g["seeds"] = seeds
    return g


def write_report(out: Path, rows: list[dict]) -> Path:
    groups = summarise(rows)
    ps = sorted({r["p"] for r in rows})
    contrast = {r.get("grating_contrast", 0.04) for r in rows}
    lines = ["# When does SCP help? The demo's ablation over scene correlation", "",
             f"Background grating contrast (the texture family's cue): {', '.join(map(str, sorted(contrast)))}.", "",
             "Percent top-1 on the motion label (6 classes, chance 16.7), mean ± sd over seeds; 'SCP pos. same class': the "
             "share of SCP's retrieved positives of the query's class over the last tenth of the steps (labels used for "
             "this diagnostic only).", ""]
    body = []
    for p in ps:
        for variant, w in (("ACP+SCP", 1.0), ("ACP only", 0.0), ("random init", 0.0)):
            cells = groups.get((p, variant, w, 1.0), [])
            if not cells:
                continue
            same = [c["scp_pos_same_class"] for c in cells] if variant != "random init" else []
            chance = next((c["scp_pos_chance"] for c in cells if c.get("scp_pos_chance")), None)
            body.append([f"{p:g}", variant, len(cells), mean_sd([c["linear_top1"] for c in cells]),
                         mean_sd([c["retrieval_top1"] for c in cells]),
                         (mean_sd([100 * v for v in same]) + (f" (chance {100 * chance:.1f})" if chance else "")) if same else ""])
    lines += ["## ACP+SCP (lambda 1) against ACP alone and the random init, by scene correlation p", "",
              markdown_table(["p", "encoder", "seeds", "linear top-1", "retrieval top-1", "SCP pos. same class (%)"], body), ""]
    body = []
    for p in ps:
        g = gains(groups, p, 1.0, 1.0)
        if g:
            body.append([f"{p:g}", mean_sd(g["linear_top1"]), mean_sd(g["retrieval_top1"]),
                         mean_sd(g["vs_acp_linear_top1"]), mean_sd(g["vs_acp_retrieval_top1"])])
    lines += ["Gains in points, per seed then mean ± sd:", "",
              markdown_table(["p", "ACP+SCP − random, linear", "retrieval", "ACP+SCP − ACP only, linear", "retrieval"], body), ""]
    extra = sorted({(r["p"], r["scp_weight"], r["scale"]) for r in rows if r["variant"] == "ACP+SCP"})
    for title, pick in (("lambda", lambda k: k[2] == 1.0), ("steps", lambda k: k[1] == 1.0)):
        knob = (lambda k: k[1]) if title == "lambda" else (lambda k: k[2])  # noqa: E731
        # the correlations where this knob took more than one value
        swept = {p for p in {k[0] for k in extra} if len({knob(k) for k in extra if pick(k) and k[0] == p}) > 1}
        keys = [k for k in extra if pick(k) and k[0] in swept]
        if not keys:
            continue
        body = []
        for p, w, scale in keys:
            g = gains(groups, p, w, scale)
            if not g:
                continue
            cells = groups[(p, "ACP+SCP", w, scale)]
            same = [c["scp_pos_same_class"] for c in cells]
            body.append([f"{p:g}", f"{w:g}", cells[0]["steps"], mean_sd(g["linear_top1"]), mean_sd(g["retrieval_top1"]),
                         mean_sd(g["vs_acp_linear_top1"]), mean_sd(g["vs_acp_retrieval_top1"]), mean_sd([100 * v for v in same])])
        lines += [f"## ACP+SCP by {title}", "",
                  markdown_table(["p", "lambda", "steps", "− random, linear", "retrieval", "− ACP only, linear", "retrieval",
                                  "SCP pos. same class (%)"], body), ""]
    lines += queue_section(out, rows)
    plot(groups, ps, out / "ablation.png")
    lines += ["![ablation](ablation.png)", ""]
    if plot_knobs(groups, out / "ablation-knobs.png"):
        lines += ["![lambda and steps](ablation-knobs.png)", ""]
    lines += [f"{len(rows)} cells in `results.jsonl`.", ""]
    return write_text_atomic(out / "ABLATION.md", "\n".join(lines))


def queue_section(out: Path, rows: list[dict]) -> list[str]:
    """The report's look at what SCP's queue retrieves: ACP+SCP (lambda 1, the demo's steps) per p, over seeds."""
    body = []
    for p in sorted({r["p"] for r in rows}):
        found = []
        for seed in sorted({r["seed"] for r in rows if r["p"] == p}):
            run = out / f"p{p:g}" / f"seed{seed}" / "ACP-SCP-l1-x1"
            if (run / "checkpoints").is_dir():
                found.append(what_the_queue_retrieves(run, out / f"p{p:g}" / "manifest.parquet", out / f"data-p{p:g}"))
        if not found:
            continue
        for name in found[0]:
            if found[0][name] is None:
                continue
            pos = [f[name]["positive"] for f in found]
            rnd = [f[name]["random"] for f in found]
            scale = 100 if name.startswith("same") else 1
            body.append([f"{p:g}", name, f"{scale * np.mean(pos):.3g}", f"{scale * np.mean(rnd):.3g}", len(found)])
    if not body:
        return []
    from ascnet.evaluate.report import markdown_table

    return ["## What the queue retrieves", "",
            "Each clip in the last checkpoint's queue as a query, its SCP positive retrieved as in training; beside it, "
            "random pairs of the queued videos (shares in %, means over seeds):", "",
            markdown_table(["p", "positive vs query", "SCP positive", "random pair", "seeds"], body), ""]


def plot(groups: dict, ps: list[float], path: Path) -> Path:
    plt = _pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for variant, w in (("ACP+SCP", 1.0), ("ACP only", 0.0), ("random init", 0.0)):
        for ax, m in zip(axes[:2], ("linear_top1", "retrieval_top1")):
            xs = [p for p in ps if groups.get((p, variant, w, 1.0))]
            vals = [[c[m] for c in groups[(p, variant, w, 1.0)]] for p in xs]
            ax.errorbar(xs, [np.mean(v) for v in vals], yerr=[np.std(v) for v in vals], marker="o", capsize=3, label=variant)
    xs = [p for p in ps if groups.get((p, "ACP+SCP", 1.0, 1.0))]
    for variant, w in (("ACP+SCP", 1.0), ("ACP only", 0.0)):
        vals = [[100 * c["scp_pos_same_class"] for c in groups.get((p, variant, w, 1.0), [])] for p in xs]
        axes[2].errorbar(xs, [np.mean(v) if v else np.nan for v in vals], yerr=[np.std(v) if v else 0 for v in vals],
                         marker="o", capsize=3, label=variant)
    axes[2].axhline(100 / 6, color="tab:gray", ls="--", lw=0.8, label="chance")
    for ax, title in zip(axes, ("linear top-1 (%)", "retrieval top-1 (%)", "SCP positives of the query's class (%)")):
        ax.set(xlabel="scene correlation p", title=title)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=8)
    axes[2].legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)
    return path


def plot_knobs(groups: dict, path: Path) -> Path | None:
    """ACP+SCP's gain over the random init against lambda and against the number of steps, where
    the sweep has more than one value of either (mean and sd over seeds)."""
    from ascnet.evaluate.report import _pyplot, save_figure

    keys = [k for k in groups if k[1] == "ACP+SCP"]
    panels = []
    for knob, pick, x_of in (("lambda", lambda k: k[3] == 1.0, lambda k, cells: k[2]),
                             ("steps", lambda k: k[2] == 1.0, lambda k, cells: cells[0]["steps"])):
        by_p: dict = {}
        for k in keys:
            if pick(k):
                by_p.setdefault(k[0], []).append(k)
        for p, ks in sorted(by_p.items()):
            if len(ks) > 1:
                panels.append((knob, p, sorted(ks, key=lambda k: x_of(k, groups[k])), x_of))
    if not panels:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.6), squeeze=False)
    for ax, (knob, p, ks, x_of) in zip(axes[0], panels):
        xs = [x_of(k, groups[k]) for k in ks]
        for m, label in (("linear_top1", "linear top-1"), ("retrieval_top1", "retrieval top-1")):
            g = [gains(groups, p, k[2], k[3]) for k in ks]
            ax.errorbar(xs, [np.mean(v[m]) for v in g], yerr=[np.std(v[m]) for v in g], marker="o", capsize=3, label=label)
        ax.axhline(10, color="tab:gray", ls="--", lw=0.8, label="the demo's goal (+10)")
        ax.set(xlabel=knob, ylabel="ACP+SCP − random init (points)", title=f"{knob}, at scene correlation p = {p:g}")
        if knob == "lambda":
            ax.set_xscale("log", base=2)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    save_figure(fig, path)
    plt.close(fig)
    return path


def floats(text: str) -> list[float]:
    return [float(v) for v in text.split(",") if v.strip()]


def sweep(out: Path, base: DemoConfig, *, correlations=(0.0, 0.3, 0.6), seeds=(0, 1, 2), lambdas=(), step_scales=(),
          at_p: float = 0.0) -> Path:
    """Run the cells not yet in OUT/results.jsonl, one (p, seed) at a time; returns ABLATION.md."""
    out.mkdir(parents=True, exist_ok=True)
    plan: dict[float, list] = {}
    for p in correlations:
        plan.setdefault(p, []).extend([("ACP+SCP", 1.0, 1.0), ("ACP only", 0.0, 1.0), ("random init", 0.0, 1.0)])
    for w in lambdas:
        plan.setdefault(at_p, []).append(("ACP+SCP", w, 1.0))
    for scale in step_scales:
        plan.setdefault(at_p, []).append(("ACP+SCP", 1.0, scale))
    for p, runs in plan.items():
        for seed in seeds:
            done = {r["key"] for r in read_results(out)}
            append_results(out, run_cells(out, p, seed, list(dict.fromkeys(runs)), base, done))
            write_report(out, read_results(out))
    return write_report(out, read_results(out))


@click.command()
@click.option("--out", default="runs/ablation", show_default=True, type=click.Path(file_okay=False))
@click.option("--correlations", default="0,0.3,0.6", show_default=True, help="scene correlations p of the main grid ('' for none)")
@click.option("--seeds", default="0,1,2", show_default=True)
@click.option("--lambdas", default="", help="ACP+SCP also at these lambdas, at --at")
@click.option("--step-scales", default="", help="ACP+SCP also at these multiples of the demo's steps, at --at")
@click.option("--at", "at_p", type=float, default=0.0, show_default=True, help="the p of --lambdas and --step-scales")
@click.option("--grating-contrast", type=float, default=DemoConfig.grating_contrast, show_default=True,
              help="the background grating's amplitude for every cell (a stronger texture family cue); one value per --out")
def main(out, correlations, seeds, lambdas, step_scales, at_p, grating_contrast):
    """The demo's ablation: ACP+SCP against ACP only and the random init, over scene correlation."""
    report = sweep(Path(out), DemoConfig(progress=False, grating_contrast=grating_contrast), correlations=floats(correlations),
                   seeds=[int(s) for s in floats(seeds)], lambdas=floats(lambdas), step_scales=floats(step_scales), at_p=at_p)
    click.echo(report.read_text())


if __name__ == "__main__":
    main()
