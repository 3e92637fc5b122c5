"""The report itself: markdown tables (ours beside the paper's Table 2) and PNG curves over rounds."""

from __future__ import annotations

import statistics
from pathlib import Path

from llmd4rec_core.atomic import atomic_path
from llmd4rec_core.report.collect import ROUND_MODEL, Group
from llmd4rec_core.report.paper import METRICS, paper_metrics

BASELINES = ("sasrec", "gru4rec", "e4srec")
NAMES = {"sasrec": "SASRec", "gru4rec": "GRU4Rec", "e4srec": "E4SRec"}
FAMILY = {"llmd4rec_c": "LLMD4Rec_C", "llmd4rec_l": "LLMD4Rec_L"}


def display_name(model: str) -> str:
    match = ROUND_MODEL.match(model)
    if match:
        return f"{FAMILY[match.group(1)]} round {match.group(2)}"
    return NAMES.get(model, model)


def rounds_of(group: Group, family: str) -> list[int]:
    found = {
        int(m.group(2))
        for run in group.runs
        for key in run.models
        if (m := ROUND_MODEL.match(key)) and m.group(1) == family
    }
    return sorted(found)


def summary(group: Group, model: str, metric: str, split: str = "test") -> tuple[float, float, int] | None:
    """(mean, std, n) of ``metric`` over the group's runs that evaluated ``model``."""
    values = [
        run.models[model][split][metric]
        for run in group.runs
        if metric in run.models.get(model, {}).get(split, {})
    ]
    if not values:
        return None
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return statistics.fmean(values), std, len(values)


def cell(stat: tuple[float, float, int] | None) -> str:
    if stat is None:
        return "–"
    mean, std, n = stat
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def model_rows(group: Group) -> list[str]:
    """Baselines and every round of both LLMD4Rec models."""
    models = [m for m in BASELINES if summary(group, m, "ndcg@10")]
    for family in FAMILY:
        models += [f"{family}/round{t}" for t in rounds_of(group, family)]
    return models


def paper_key(group: Group, model: str) -> str | None:
    """The Table 2 column for ``model``: baselines by name, LLMD4Rec models at their final round."""
    match = ROUND_MODEL.match(model)
    if match is None:
        return model
    final = rounds_of(group, match.group(1))[-1]
    return match.group(1) if int(match.group(2)) == final else None


def metrics_table(group: Group, dataset: str | None) -> list[str]:
    header = "| model | source | n | " + " | ".join(m.upper() for m in METRICS) + " |"
    lines = [header, "|" + "---|" * (len(METRICS) + 3)]
    for model in model_rows(group):
        n = summary(group, model, "ndcg@10")
        count = n[2] if n else 0
        cells = " | ".join(cell(summary(group, model, m)) for m in METRICS)
        lines.append(f"| {display_name(model)} | ours | {count} | {cells} |")
        key = paper_key(group, model)
        paper = paper_metrics(dataset or "", key) if key else None
        if paper:
            lines.append(
                f"| {display_name(model)} | paper | | "
                + " | ".join(f"{paper[m]:.4f}" for m in METRICS)
                + " |"
            )
    return lines


def ablation_table(groups: list[Group]) -> list[str]:
    """Final-round LLMD4Rec_C / LLMD4Rec_L of every params setting, with the change against the default."""
    lines = [
        "| setting | runs | LLMD4Rec_C NDCG@10 | Δ | LLMD4Rec_L NDCG@10 | Δ "
        "| LLMD4Rec_C HR@10 | LLMD4Rec_L HR@10 |",
        "|---|---|---|---|---|---|---|---|",
    ]
    base = {f: final_stat(groups[0], f, "ndcg@10") for f in FAMILY}
    for group in groups:
        parts = []
        for family in FAMILY:
            stat = final_stat(group, family, "ndcg@10")
            ref = base[family] if group_dataset(group) == group_dataset(groups[0]) else None
            delta = f"{(stat[0] / ref[0] - 1) * 100:+.1f} %" if stat and ref and ref[0] > 0 else "–"
            parts += [cell(stat), delta]
        hr = [cell(final_stat(group, f, "hr@10")) for f in FAMILY]
        lines.append(f"| {group.label} | {len(group.runs)} | " + " | ".join(parts + hr) + " |")
    return lines


STRATEGY = {"llmd4rec": "LLMD4Rec_C", "dllm2rec": "DLLM2Rec({crm})", "alkdrec": "ALKDRec({crm})",
            "none": "{crm}, L_rec only"}  # fmt: skip


def export_cost(group: Group, last_round: int) -> tuple[float, float, float | None] | None:
    """Mean over runs of the LLM forward passes and export seconds of rounds 1..last_round, and the share
    of the export pool scored (None if the timing files predate the pool count)."""
    per_run = []
    for run in group.runs:
        rounds = [run.exports.get(t) for t in range(1, last_round + 1)]
        if all(r is not None for r in rounds):
            passes = sum(float(r["forward_passes"]) for r in rounds)  # type: ignore[index]
            pools = [r.get("pool") for r in rounds]  # type: ignore[union-attr]
            share = passes / sum(pools) if all(isinstance(p, int) and p > 0 for p in pools) else None
            per_run.append((passes, sum(float(r["seconds"]) for r in rounds), share))  # type: ignore[index]
    if not per_run:
        return None
    shares = [r[2] for r in per_run]
    share = statistics.fmean(shares) if all(x is not None for x in shares) else None  # type: ignore[arg-type]
    return statistics.fmean(r[0] for r in per_run), statistics.fmean(r[1] for r in per_run), share


def strategy_table(groups: list[Group]) -> list[str]:
    """Every distilled CRM (each setting's ``distill.method``, every round) beside the undistilled CRMs,
    with the LLM compute its teacher signal cost: forward passes and seconds of the exports it read."""
    lines = [
        "| model | setting | runs | NDCG@10 | Δ vs SASRec | HR@10 | NDCG@20 | LLM forward passes "
        "| share of the full export | LLM export s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def sasrec_of(group: Group) -> tuple[float, float, int] | None:
        """The group's own SASRec, else the first setting's if on the same dataset (else no delta)."""
        own = summary(group, "sasrec", "ndcg@10")
        same_data = group_dataset(group) == group_dataset(groups[0])
        return own or (summary(groups[0], "sasrec", "ndcg@10") if same_data else None)

    def row(name: str, label: str, group: Group, model: str, cost: str) -> str:
        base = sasrec_of(group)
        stat = summary(group, model, "ndcg@10")
        delta = f"{(stat[0] / base[0] - 1) * 100:+.1f} %" if stat and base and base[0] > 0 else "–"
        others = [cell(summary(group, model, m)) for m in ("hr@10", "ndcg@20")]
        count = stat[2] if stat else 0
        return f"| {name} | {label} | {count} | {cell(stat)} | {delta} | {' | '.join(others)} | {cost} |"

    for model in ("sasrec", "gru4rec"):
        if summary(groups[0], model, "ndcg@10"):
            lines.append(row(NAMES[model], groups[0].label, groups[0], model, "0 | – | 0"))
    for group in groups:
        crm = NAMES.get(str(group.params.get("llm.crm", "sasrec")), "CRM")
        method = str(group.params.get("distill.method", "llmd4rec"))
        for t in rounds_of(group, "llmd4rec_c"):
            name = STRATEGY.get(method, method).format(crm=crm) + f" round {t}"
            spent = export_cost(group, t)
            cost = "– | – | –"
            if spent is not None:
                share = "–" if spent[2] is None else f"{spent[2] * 100:.1f} %"
                cost = f"{spent[0]:,.0f} | {share} | {spent[1]:.1f}"
            lines.append(row(name, group.label, group, f"llmd4rec_c/round{t}", cost))
    return lines


def final_stat(group: Group, family: str, metric: str) -> tuple[float, float, int] | None:
    rounds = rounds_of(group, family)
    return summary(group, f"{family}/round{rounds[-1]}", metric) if rounds else None


def curve_points(group: Group, family: str, metric: str) -> tuple[list[int], list[float]]:
    """Figure 4: the metric per round; round 0 is the undistilled model (SASRec for C, E4SRec for L)."""
    crm = str(group.params.get("llm.crm", "sasrec"))
    start = crm if family == "llmd4rec_c" else "e4srec"
    xs, ys = [], []
    first = summary(group, start, metric)
    if first:
        xs.append(0)
        ys.append(first[0])
    for t in rounds_of(group, family):
        stat = summary(group, f"{family}/round{t}", metric)
        if stat:
            xs.append(t)
            ys.append(stat[0])
    return xs, ys


def plot_rounds(groups: list[Group], path: Path) -> None:
    """HR@10 and NDCG@10 over rounds for both models and every setting (the paper's Figure 4)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=120)
    for ax, metric in zip(axes, ("hr@10", "ndcg@10"), strict=True):
        for group in groups:
            for family, style in (("llmd4rec_c", "-o"), ("llmd4rec_l", "--s")):
                xs, ys = curve_points(group, family, metric)
                if xs:
                    ax.plot(xs, ys, style, label=f"{FAMILY[family]} ({group.label})")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("round T (0 = SASRec / E4SRec without distillation)")
        ax.set_ylabel(f"test {metric.upper()}")
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7)
    fig.suptitle("Performance over training rounds (cf. paper Figure 4)")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def plot_models(group: Group, dataset: str | None, path: Path) -> None:
    """Test NDCG@10 of every model, ours beside the paper's where Table 2 has the cell."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = model_rows(group)
    ours = [summary(group, m, "ndcg@10") for m in models]
    papers = []
    for m in models:
        key = paper_key(group, m)
        paper = paper_metrics(dataset or "", key) if key else None
        papers.append(paper["ndcg@10"] if paper else 0.0)
    fig, ax = plt.subplots(figsize=(max(6, 1.1 * len(models)), 4), dpi=120)
    xs = range(len(models))
    ax.bar(
        [x - 0.2 for x in xs],
        [s[0] if s else 0 for s in ours],
        0.4,
        yerr=[s[1] if s else 0 for s in ours],
        label="ours",
    )
    ax.bar([x + 0.2 for x in xs], papers, 0.4, label="paper Table 2", alpha=0.6)
    ax.set_xticks(list(xs), [display_name(m) for m in models], rotation=30, ha="right", fontsize=8)
    ax.set_ylabel("test NDCG@10")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)


def group_dataset(group: Group) -> str | None:
    return next((run.dataset for run in group.runs if run.dataset), None)


def history_note(group: Group) -> str:
    for run in group.runs:
        for metrics in run.models.values():
            masked = metrics.get("protocol", {}).get("history_masked")
            return "history masked" if masked else "history not masked"
    return ""


def render(groups: list[Group], out_dir: Path) -> Path:
    """Write ``report.md``, ``rounds.png`` and ``models.png`` into ``out_dir``; return the markdown path."""
    lines = [
        "# LLMD4Rec results",
        "",
        "Test split, full ranking over the whole catalogue, pessimistic ties (DESIGN.md §2). *paper* rows "
        "are the LLMD4Rec paper's Table 2 (their data filtering, Qwen2.5-7B backbone), shown for "
        "reference; *n* is the number of seeds averaged (mean ± sample std).",
        "",
    ]
    for group in groups:
        runs = ", ".join(run.name for run in group.runs)
        dataset = group_dataset(group)
        lines += [
            f"## Setting: {group.label}",
            "",
            f"Dataset **{dataset}**, {history_note(group)}. Runs: {runs}",
            "",
        ]
        lines += [*metrics_table(group, dataset), ""]
    if len(groups) > 1:
        lines += ["## Ablations and other settings (final round)", "", *ablation_table(groups), ""]
    if any(rounds_of(group, "llmd4rec_c") for group in groups):
        lines += [
            "## LLM -> CRM strategies and the LLM compute they need",
            "",
            "Test split. Round t's CRM learns from round t's LLM export (round 1: the LLM fine-tuned with "
            "the pretrained CRM's KL). LLM cost: forward passes and seconds of the exports it read, rounds "
            "1..t; each method also needs the LLM's fine-tuning, the same for all at round 1.",
            "",
            *strategy_table(groups),
            "",
        ]
    lines += ["![metrics over rounds](rounds.png)", "", "![NDCG@10 against the paper](models.png)", ""]
    out_dir.mkdir(parents=True, exist_ok=True)
    plot_rounds(groups, out_dir / "rounds.png")
    plot_models(groups[0], group_dataset(groups[0]), out_dir / "models.png")
    md = out_dir / "report.md"
    with atomic_path(md) as tmp:
        tmp.write_text("\n".join(lines))
    return md
