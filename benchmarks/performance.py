"""Issue 7: every performance figure side by side in one run, printed as a table of ratios.

    python benchmarks/performance.py --out benchmarks/results/performance.json

Run it after `dvc repro` (it reads data/processed, models/ and logits/ of the default pipeline) and
after `python benchmarks/repro_profile.py --out benchmarks/results/repro_profile.json` (the whole-
pipeline wall time and peak RSS, 70 minutes on Beauty; `--run-repro` runs it first). RecBole runs in
its own virtual environment (benchmarks/recbole/requirements.txt):

    python -m venv benchmarks/.venv-recbole
    benchmarks/.venv-recbole/bin/pip install -r benchmarks/recbole/requirements.txt

Sections (`--sections`, comma-separated; all by default), each timed in this one run, nothing else on
the machine; medians over repeats where a figure is a rate:

- sasrec:  our SASRec against RecBole's SASRec on the same data, d, max length, loss (full-softmax CE),
           dropout, and targets per step; time to reach RecBole's validation NDCG@10 after its 2nd epoch
           and its best, seconds per epoch, peak RSS. Both models are scored under both protocols from
           the same scores: history masked (ours, DESIGN.md section 2; RecBole's scores are masked by
           run_recbole.py) and unmasked (RecBole's own full-sort evaluation of sequential models), plus
           the mean number of a user's own history items in the unmasked top 10. Ours also with its
           default loss (sampled softmax).
- eval:    full-ranking evaluation throughput (users / s) of the same-size SASRec against RecBole's
           full-sort validation (from the sasrec section's RecBole run).
- llm:     the E4SRec fine-tune step's FLOP/s (counted by torch's FlopCounterMode) against this
           machine's float32 matmul peak, and prompt tokens per instance.
- kl:      the KL and sample-weight kernels against naive references (rows / s): a per-row loop
           and the vectorised textbook formula, and the low-temperature values of both.
- topk:    the error of the KL computed from the Parquet export (top-K exact + 8-bit tail) against
           the exact one (benchmarks/topk_kl_error.py).
- latency: full-catalogue scoring latency per user, the distilled SASRec against the LLM recommender.
- repro:   per-stage wall time and peak RSS of the whole default `dvc repro` (from repro_profile.py).

    python benchmarks/performance.py retable benchmarks/results/performance.json

re-derives the SASRec rows of a finished run from the curves it stored, without training again.
"""

from __future__ import annotations

import json
import math
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
import typer

os.environ.setdefault("TQDM_DISABLE", "1")  # progress bars would drown the table (set before tqdm loads)
sys.path.insert(0, str(Path(__file__).resolve().parent))  # sibling benchmark modules
from latency import seconds_per_user
from topk_kl_error import kl_errors

from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.kl import history_mask, sample_weight, weighted_kl
from llmd4rec_core.params import load_params

app = typer.Typer(add_completion=False, help=__doc__)
HERE = Path(__file__).resolve().parent
SECTIONS = ("sasrec", "eval", "llm", "kl", "topk", "latency", "repro")
Row = dict[str, Any]  # one printed line: figure, ours, reference, ratio, target, note


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up (allocator, thread pool)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def row(
    figure: str, ours: float | None, ref: float | None, unit: str, target: str = "", note: str = ""
) -> Row:
    ratio = ours / ref if ours is not None and ref not in (None, 0) else None
    return {
        "figure": figure,
        "ours": ours,
        "reference": ref,
        "unit": unit,
        "ratio": ratio,
        "target": target,
        "note": note,
    }


# --- 1, 2: SASRec training and full-ranking evaluation against RecBole ---------------------------------


def write_recbole_atomic(data_dir: Path, out_dir: Path, dataset: str) -> Path:
    """`<out_dir>/<dataset>/<dataset>.inter`: each user's whole sequence (train + valid + test items) with
    its position as the timestamp, so RecBole's leave-one-out split ('LS' valid_and_test, order TO)
    holds out the same valid and test items as ours."""
    seq = pl.read_parquet(data_dir / "sequences.parquet")
    users, items, stamps = [], [], []
    for user, train, valid, test in seq.iter_rows():
        full = [*train, valid, test]
        users += [user] * len(full)
        items += full
        stamps += list(range(len(full)))
    path = out_dir / dataset / f"{dataset}.inter"
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame({"user_id:token": users, "item_id:token": items, "timestamp:float": stamps}).write_csv(
        path, separator="\t"
    )
    return path


def recbole_config(params: Any, data_path: Path, dataset: str, batch: int, seed: int) -> dict[str, Any]:
    s = params.sasrec
    return {
        "dataset": dataset,
        "data_path": str(data_path),
        "checkpoint_dir": str(data_path / "saved"),
        "log_wandb": False,
        "show_progress": False,
        "state": "WARNING",
        "seed": seed,
        "reproducibility": True,
        "use_gpu": False,
        "device": "cpu",
        "worker": 0,
        "USER_ID_FIELD": "user_id",
        "ITEM_ID_FIELD": "item_id",
        "TIME_FIELD": "timestamp",
        "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
        "MAX_ITEM_LIST_LENGTH": s.max_len,
        "hidden_size": s.hidden_size,
        "inner_size": s.hidden_size,  # our feed-forward width is d (Kang & McAuley)
        "n_layers": s.num_layers,
        "n_heads": s.num_heads,
        "hidden_dropout_prob": s.dropout,
        "attn_dropout_prob": s.dropout,
        "hidden_act": "gelu",
        "layer_norm_eps": 1e-12,
        "initializer_range": 0.02,
        "loss_type": "CE",
        "train_neg_sample_args": None,
        "learning_rate": 0.001,  # RecBole's default (Adam, constant); ours keeps its own schedule
        "train_batch_size": batch,
        "eval_batch_size": 4096,
        "stopping_step": RECBOLE_STOPPING_STEP,
        "eval_step": 1,
        "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"},
        "metrics": ["NDCG", "Hit"],
        "topk": [10],
        "valid_metric": "NDCG@10",
    }


RECBOLE_STOPPING_STEP = 10  # RecBole's early stop: epochs without a better validation NDCG@10


def read_curve(path: Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    return lines[0], lines[1:]


def time_to_reach(curve: list[dict[str, Any]], metric: str, target: float) -> float | None:
    """Cumulative training + validation seconds at the first epoch whose `metric` (a curve key) >= target."""
    for r in curve:
        if r[metric] >= target - 1e-12:
            return float(r["seconds"])
    return None


def history_items_in_top10(model: Any, data: Any, max_len: int) -> float:
    """Mean number of the user's own history items among its 10 best-scored items, unmasked (valid split):
    each is a sure miss on Beauty, where no user repeats an item."""
    from llmd4rec_core.batching import left_pad
    from llmd4rec_core.scoring import scores_by_length

    hist, counts = data.inputs("valid"), []
    for idx, scores in scores_by_length(model, hist, max_len, 4096, torch.device("cpu")):
        scores[:, 0] = float("-inf")
        top = scores.topk(10, dim=1).indices  # [B, 10]
        pad = left_pad([hist[i] for i in idx], max(len(hist[i]) for i in idx))  # [B, L], 0 = padding
        counts.append((top[:, :, None] == pad[:, None, :]).any(-1).sum(1).float())
    return float(torch.cat(counts).mean())


def ours_sasrec(
    out: str = typer.Option(...), loss: str = typer.Option(...), data_dir: str = typer.Option(...)
) -> None:
    """(internal) train our SASRec with the committed params but `loss`; one JSON line per epoch like
    run_recbole.py, in its own process so that its peak RSS is its own. Validation is scored once per
    epoch and read both ways: masked (our protocol, which also selects the epoch, as the pipeline does)
    and unmasked (RecBole's); `ranks_by_length` computes both ranks from the same scores anyway."""
    import llmd4rec_core.training as training
    from llmd4rec_core.metrics import ranking_metrics
    from llmd4rec_core.models import build_crm
    from llmd4rec_core.scoring import ranks_by_length
    from llmd4rec_core.seeding import seed_everything, set_determinism

    unmasked: list[dict[str, float]] = []

    def both_ways(model: Any, data: Any, max_len: int, mask_history: bool, eval_batch: int) -> dict:
        device = next(model.parameters()).device
        hist, tgt = data.inputs("valid"), data.targets("valid")
        ranks = ranks_by_length(model, hist, tgt, max_len, eval_batch, device)
        unmasked.append(ranking_metrics(ranks["unmasked"], [10]))
        return ranking_metrics(ranks["masked" if mask_history else "unmasked"], [10])

    training.validation_metrics = both_ways  # the loop's only validation call; results are unchanged
    torch.set_num_threads(2)
    params = load_params()
    cfg = params.sasrec.model_copy(update={"loss": loss})
    out_path = Path(out)
    start = time.perf_counter()
    data = load_sequences(data_dir)
    seed_everything(params.seed)
    set_determinism(params.deterministic)
    net = build_crm("sasrec", cfg, data.num_items)
    setup = time.perf_counter() - start
    result = training.train_crm(net, data, cfg, cfg.max_len, params.seed, True, 512)
    header = {
        "setup_seconds": round(setup, 2),
        "train_sequences": len(data.train),
        "params": sum(p.numel() for p in net.parameters()),
        "threads": torch.get_num_threads(),
        "best_epoch_masked": result.best_epoch,
        "history_items_in_top10": history_items_in_top10(net, data, cfg.max_len),  # at the best epoch
    }
    clock, rows = 0.0, [header]
    for h, u in zip(result.history, unmasked, strict=True):
        clock += h["seconds"]
        rows.append(
            {
                "epoch": h["epoch"],
                "train_seconds": h["train_seconds"],
                "valid_seconds": h["seconds"] - h["train_seconds"],
                "seconds": clock,
                "valid_ndcg@10": u["ndcg@10"],
                "valid_hr@10": u["hr@10"],
                "valid_masked_ndcg@10": h["valid_ndcg@10"],
                "valid_masked_hr@10": h["valid_hr@10"],
            }
        )
    rows[-1]["peak_rss_gb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3)
    out_path.write_text("".join(json.dumps(r) + "\n" for r in rows))


PROTOCOLS = {  # curve key of validation NDCG@10 -> how the table names the protocol
    "valid_masked_ndcg@10": "history masked (our protocol)",
    "valid_ndcg@10": "unmasked (RecBole's protocol)",
}


def sasrec_rows(curves: dict[str, tuple[dict[str, Any], list[dict[str, Any]]]]) -> list[Row]:
    """Time to RecBole's epoch-2 and best validation NDCG@10 under each protocol, best values, seconds per
    epoch, peak RSS and history items in the unmasked top 10, ours against RecBole for each of our losses."""
    _, rb = curves["recbole"]
    rows: list[Row] = []
    for key in [k for k in curves if k != "recbole"]:
        header, ours = curves[key]
        label = "CE, matched" if key == "ours:ce" else f"{key.split(':')[1]}, our default"
        for metric, protocol in PROTOCOLS.items():
            at2 = rb[min(1, len(rb) - 1)][metric]
            best = max(rb, key=lambda r, m=metric: r[m])
            ours_best = max(r[metric] for r in ours)
            missed = f"never reached in {len(ours)} epochs" if ours_best < best[metric] - 1e-12 else ""
            since_best = rb[-1]["epoch"] - best["epoch"]
            if since_best < RECBOLE_STOPPING_STEP:  # a time or epoch cap stopped RecBole, not its early stop
                capped = (
                    f"RecBole capped {since_best} epochs after this best: its true best may be higher, later"
                )
                missed = "; ".join(filter(None, [missed, capped]))
            rows += [
                row(
                    f"SASRec time to RecBole's epoch-2 valid NDCG@10 {at2:.4f}, {protocol} ({label})",
                    time_to_reach(ours, metric, at2),
                    time_to_reach(rb, metric, at2),
                    "s",
                    "<= 0.5x",
                ),
                row(
                    f"SASRec time to RecBole's best valid NDCG@10 {best[metric]:.4f} "
                    f"(epoch {best['epoch']}), {protocol} ({label})",
                    time_to_reach(ours, metric, best[metric]),
                    float(best["seconds"]),
                    "s",
                    "<= 0.5x",
                    missed,
                ),
                row(f"SASRec best valid NDCG@10, {protocol} ({label})", ours_best, best[metric], ""),
            ]
        rb_best = max(rb, key=lambda r: r["valid_ndcg@10"])  # RecBole's own selection
        rows += [
            row(
                f"SASRec train seconds / epoch, median ({label})",
                statistics.median(r["train_seconds"] for r in ours),
                statistics.median(r["train_seconds"] for r in rb),
                "s",
                "",
                "an epoch is different work: see docs/performance.md",
            ),
            row(f"SASRec training peak RSS ({label})", ours[-1]["peak_rss_gb"], rb[-1]["peak_rss_gb"], "GB"),
            row(
                f"own history items in the unmasked top 10, valid, at the selected epoch ({label})",
                header["history_items_in_top10"],
                rb_best["history_items_in_top10"],
                "items",
                "",
                "each is a sure miss on Beauty (no repeats)",
            ),
        ]
    return rows


def sasrec_section(
    params: Any,
    data_dir: Path,
    work: Path,
    recbole_python: Path,
    epochs: int,
    minutes: float,
    ours_losses: list[str],
) -> tuple[list[Row], dict[str, Any]]:
    if not recbole_python.exists():
        raise typer.BadParameter(f"{recbole_python}: RecBole's venv not found (see this module's docstring)")
    data = load_sequences(data_dir)
    targets_per_seq = sum(max(len(s) - 1, 0) for s in data.train) / len(data.train)
    batch = round(params.sasrec.batch_size * targets_per_seq)  # RecBole: one prefix = one target
    write_recbole_atomic(data_dir, work, "beauty")
    cfg_path = work / "recbole_config.json"
    cfg_path.write_text(json.dumps(recbole_config(params, work, "beauty", batch, params.seed)))
    rb_out = work / "recbole_curve.jsonl"
    print(
        f"[sasrec] RecBole, train_batch_size {batch} (= {params.sasrec.batch_size} sequences x "
        f"{targets_per_seq:.2f} targets)",
        flush=True,
    )
    subprocess.run(
        [
            str(recbole_python),
            str(HERE / "recbole" / "run_recbole.py"),
            "--config",
            str(cfg_path),
            "--out",
            str(rb_out),
            "--epochs",
            str(epochs),
            "--max-seconds",
            str(minutes * 60),
        ],
        check=True,
        cwd=work,  # RecBole writes log/ and log_tensorboard/ into its working directory
    )
    curves = {"recbole": read_curve(rb_out)}
    for loss in dict.fromkeys(ours_losses):
        print(f"[sasrec] ours, loss {loss}", flush=True)
        path = work / f"ours_{loss}.jsonl"
        subprocess.run(
            [
                sys.executable,
                __file__,
                "ours-sasrec",
                "--out",
                str(path),
                "--loss",
                loss,
                "--data-dir",
                str(data_dir),
            ],
            check=True,
        )
        curves[f"ours:{loss}"] = read_curve(path)
    return sasrec_rows(curves), {k: {"header": h, "curve": c} for k, (h, c) in curves.items()}


def eval_section(
    params: Any, data_dir: Path, model_dir: Path, recbole: dict[str, Any] | None, repeats: int
) -> list[Row]:
    from llmd4rec_core.recommenders import load_recommender
    from llmd4rec_core.scoring import ranks_by_length

    data = load_sequences(data_dir)
    net = load_recommender(model_dir, data.num_items, torch.device("cpu")).scorer
    hist, tgt = data.inputs("valid"), data.targets("valid")
    cpu = torch.device("cpu")
    sec = median_seconds(lambda: ranks_by_length(net, hist, tgt, params.sasrec.max_len, 4096, cpu), repeats)
    ours = len(hist) / sec
    ref = None
    if recbole is not None:
        header, curve = recbole["header"], recbole["curve"]
        ref = header["valid_users"] / statistics.median(r["valid_seconds"] for r in curve)
    return [
        row(
            "full-ranking evaluation, users / s (valid split, 4,096 users a batch)",
            ours,
            ref,
            "users/s",
            ">= 1x",
            "ours ranks masked and unmasked and computes both; RecBole's from its epochs",
        )
    ]


# --- 3: LLM fine-tune step FLOP/s ------------------------------------------------------------------


def matmul_peak(repeats: int) -> tuple[float, int]:
    """Best float32 GFLOP/s of a square matmul over a few sizes (the machine's practical peak)."""
    best, best_n = 0.0, 0
    for n in (1024, 2048, 3072):
        a, b = torch.randn(n, n), torch.randn(n, n)
        sec = median_seconds(lambda a=a, b=b: torch.mm(a, b), repeats)
        gflops = 2 * n**3 / sec / 1e9
        if gflops > best:
            best, best_n = gflops, n
    return best, best_n


def llm_section(
    params: Any, data_dir: Path, model_dir: Path, repeats: int
) -> tuple[list[Row], dict[str, Any]]:
    import torch.nn.functional as F
    from torch.utils.flop_counter import FlopCounterMode

    from llmd4rec_core.batching import bucketed_batches
    from llmd4rec_core.data.instances import split_instances
    from llmd4rec_core.llm.checkpoint import load_e4srec

    cfg = params.llm
    data = load_sequences(data_dir)
    model, _ = load_e4srec(model_dir, torch.device("cpu"), data.num_items, trainable=True)
    inst = split_instances(data, "train", cfg.instances_per_user)
    lengths = np.array([min(len(h), cfg.max_items) for h in inst.histories])
    tokens = np.array([len(model.template.row(h)[0]) for h in inst.histories])
    trainable = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trainable, lr=0.0)  # lr 0: the step's cost without changing the model

    def step(idx: np.ndarray) -> None:
        histories = [inst.histories[i] for i in idx]
        logits = model(model.template.batch(histories))  # [b, I]
        loss = F.cross_entropy(logits, torch.as_tensor(inst.targets[idx]) - 1)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    def timed_steps(batch_size: int) -> tuple[list[float], list[float], list[np.ndarray]]:
        """FLOPs and seconds of `repeats` steps on random length-bucketed batches (after one warm-up)."""
        batches = bucketed_batches(lengths, batch_size, np.random.default_rng(0))
        draw = np.random.default_rng(1).choice(len(batches), repeats + 1, replace=False)
        picked = [batches[i] for i in draw]
        flops, secs = [], []
        for idx in picked:
            with FlopCounterMode(display=False) as counter:
                step(idx)
            start = time.perf_counter()
            step(idx)
            secs.append(time.perf_counter() - start)
            flops.append(counter.get_total_flops())
        return flops[1:], secs[1:], picked[1:]  # the first is the warm-up

    peak, n = matmul_peak(repeats)
    facts: dict[str, Any] = {
        "matmul_peak_gflops": peak,
        "matmul_peak_size": n,
        "prompt_tokens_mean": float(tokens.mean()),
        "prefix_suffix_tokens": len(model.template.prefix) + len(model.template.suffix),
        "instances": len(inst),
    }
    rows: list[Row] = []
    picked_default: list[np.ndarray] = []
    for batch_size in (cfg.batch_size, 2 * cfg.batch_size):  # the params' batch, and the lever: twice it
        flops, secs, picked = timed_steps(batch_size)
        picked_default = picked_default or picked
        achieved = statistics.median(f / s / 1e9 for f, s in zip(flops, secs, strict=True))
        facts[f"batch_{batch_size}"] = {
            "gflop_per_step_median": statistics.median(flops) / 1e9,
            "seconds_per_step_median": statistics.median(secs),
            "gflops_median": achieved,
        }
        lever = "" if batch_size == cfg.batch_size else ", the lever: twice the params' batch"
        rows.append(
            row(
                f"LLM fine-tune step GFLOP/s vs float32 matmul peak ({n}x{n}), batch {batch_size}{lever}",
                achieved,
                peak,
                "GFLOP/s",
                ">= 0.4x",
                f"{statistics.median(secs):.2f} s / step, "
                f"{batch_size / statistics.median(secs):.0f} instances / s",
            )
        )
    toks = [int(tokens[idx].sum()) / len(idx) for idx in picked_default]
    rows.append(
        row(
            "prompt tokens per instance (mean; instruction + item slots)",
            float(tokens.mean()),
            float(np.mean(toks)),
            "tokens",
            "",
            f"{facts['prefix_suffix_tokens']} shared tokens; reference = the timed batches' mean",
        )
    )
    return rows, facts


# --- 4: KL and weighting kernels ---------------------------------------------------------------------


def naive_kl(
    teacher: torch.Tensor, student: torch.Tensor, t: float, w: torch.Tensor, exclude: torch.Tensor
) -> torch.Tensor:
    """Textbook reference: per row, drop the history, softmax both, sum p * log(p / q)."""
    out = []
    for n in range(teacher.shape[0]):
        keep = ~exclude[n]
        p = torch.softmax(teacher[n, keep] / t, 0)
        q = torch.softmax(student[n, keep] / t, 0)
        out.append(w[n] * (p * (p / q).log()).nansum())
    return torch.stack(out).mean()


def vectorised_naive_kl(
    teacher: torch.Tensor, student: torch.Tensor, t: float, w: torch.Tensor, exclude: torch.Tensor
) -> torch.Tensor:
    """The same formula on whole tensors: masked softmax, then p * log(p / q) (no log-space)."""
    p = torch.softmax((teacher / t).masked_fill(exclude, float("-inf")), 1)
    q = torch.softmax((student / t).masked_fill(exclude, float("-inf")), 1)
    return (w * (p * (p / q).log()).nansum(1)).mean()


def naive_weights(r_s: list[int], r_t: list[int]) -> list[float]:
    out = []
    for s, t in zip(r_s, r_t, strict=True):
        w = 1 + (s - t) / max(t, 1) if s > t else 1 - (t - s) / max(s, 1)
        out.append(min(max(w, 0.0), 2.0))
    return out


def kl_section(params: Any, data_dir: Path, repeats: int) -> tuple[list[Row], dict[str, Any]]:
    data = load_sequences(data_dir)
    n, t = 256, params.T2
    gen = torch.Generator().manual_seed(0)
    teacher = torch.randn(n, data.num_items, generator=gen) * 3
    student = (torch.randn(n, data.num_items, generator=gen) * 3).requires_grad_()
    hist = data.train[:n]
    exclude = history_mask(hist, data.num_items, torch.device("cpu"))
    w = torch.rand(n, generator=gen) * 2

    def ours() -> None:
        weighted_kl(teacher, student, t, w, exclude).backward()

    def naive() -> None:
        naive_kl(teacher, student, t, w, exclude).backward()

    def vectorised() -> None:
        vectorised_naive_kl(teacher, student, t, w, exclude).backward()

    ref_value = float(naive_kl(teacher, student.detach(), t, w, exclude))
    vec_value = float(vectorised_naive_kl(teacher, student.detach(), t, w, exclude))
    cold = float(weighted_kl(teacher, student.detach(), 0.05, w, exclude))  # a low temperature
    cold_naive = float(vectorised_naive_kl(teacher, student.detach(), 0.05, w, exclude))
    our_value = float(weighted_kl(teacher, student.detach(), t, w, exclude))
    s_ours, s_naive = median_seconds(ours, repeats), median_seconds(naive, repeats)
    s_vec = median_seconds(vectorised, repeats)
    r_s = torch.randint(1, data.num_items, (100_000,), generator=gen)
    r_t = torch.randint(1, data.num_items, (100_000,), generator=gen)
    ls, lt = r_s.tolist(), r_t.tolist()
    w_err = float((sample_weight(r_s, r_t) - torch.tensor(naive_weights(ls, lt))).abs().max())
    s_w = median_seconds(lambda: sample_weight(r_s, r_t), repeats)
    s_wn = median_seconds(lambda: naive_weights(ls, lt), max(1, repeats // 2))
    rows = [
        row(
            f"weighted KL fwd+bwd, rows / s ([{n}, {data.num_items}], T = {t}, history masked)",
            n / s_ours,
            n / s_naive,
            "rows/s",
            "",
            f"rel. diff to reference {abs(our_value - ref_value) / ref_value:.1e}",
        ),
        row(
            f"weighted KL fwd+bwd, rows / s, against the vectorised textbook formula (T = {t})",
            n / s_ours,
            n / s_vec,
            "rows/s",
            "",
            f"rel. diff {abs(our_value - vec_value) / ref_value:.1e}; at T = 0.05: ours {cold:.4g}, "
            f"textbook {cold_naive:.4g}",
        ),
        row(
            "sample weight (Eq. 4 / 8), ranks / s (100,000)",
            1e5 / s_w,
            1e5 / s_wn,
            "ranks/s",
            "",
            f"max |diff| to reference {w_err:.1e}",
        ),
    ]
    facts = {
        "kl_value": our_value,
        "kl_reference": ref_value,
        "kl_vectorised_reference": vec_value,
        "kl_t0.05": cold,
        "kl_t0.05_vectorised_reference": cold_naive,
        "weight_max_abs_diff": w_err,
    }
    return rows, facts


def topk_section(
    data_dir: Path, export: Path, teacher: Path, student: Path, temperatures: list[float]
) -> tuple[list[Row], Any]:
    errors = kl_errors(str(export), str(teacher), str(student), str(data_dir), 2000, 64, temperatures)
    rows = [
        row(
            f"KL from the export vs exact, mean relative error (T = {e['T']})",
            e["rel_err_mean"],
            None,
            "",
            "",
            f"row p99 {e['row_rel_err_p99']:.2e}; top-K + one bucket: {e['bucket_rel_err_mean']:.2e}",
        )
        for e in errors
    ]
    return rows, errors


# --- 6: inference latency ----------------------------------------------------------------------------


def latency_section(data_dir: Path, crm: Path, llm: Path, users: int) -> list[Row]:
    from llmd4rec_core.recommenders import load_recommender

    data = load_sequences(data_dir)
    hist, tgt = data.inputs("test")[:users], data.targets("test")[:users]
    cpu = torch.device("cpu")
    out = {}
    for name, path in (("crm", crm), ("llm", llm)):
        loaded = load_recommender(path, data.num_items, cpu)
        out[name] = (
            seconds_per_user(loaded.scorer, hist[:64], tgt[:64], loaded.max_len, 1),
            seconds_per_user(loaded.scorer, hist, tgt, loaded.max_len, 64),
        )
    return [
        row(f"latency per user, batch 1: {crm} vs {llm}", out["crm"][0] * 1e3, out["llm"][0] * 1e3, "ms"),
        row(f"latency per user, batch 64: {crm} vs {llm}", out["crm"][1] * 1e3, out["llm"][1] * 1e3, "ms"),
    ]


# --- 5: the whole pipeline ----------------------------------------------------------------------------


def repro_section(profile: Path) -> tuple[list[Row], Any]:
    if not profile.exists():
        raise typer.BadParameter(f"{profile}: not found; run benchmarks/repro_profile.py or pass --run-repro")
    prof = json.loads(profile.read_text())
    rows = [
        row(f"dvc repro stage {s['stage']}", s["seconds"], None, "s", "", f"peak RSS {s['peak_rss_gb']} GB")
        for s in prof["stages"]
    ]
    rows.append(row("dvc repro, whole pipeline, minutes", prof["wall_seconds"] / 60, 90.0, "min", "<= 1x"))
    rows.append(row("dvc repro, peak RSS of the process tree", prof["peak_rss_gb"], 8.0, "GB", "<= 1x"))
    return rows, prof


def fmt(v: float | None) -> str:
    if v is None:
        return "-"
    if v == 0 or 1e-3 <= abs(v) < 1e6:
        return f"{v:,.4g}" if abs(v) < 1000 else f"{v:,.0f}"
    return f"{v:.2e}"


@app.command()
def main(
    out: str = typer.Option("benchmarks/results/performance.json", help="all figures as JSON"),
    sections: str = typer.Option(",".join(SECTIONS), help="comma-separated subset of " + ",".join(SECTIONS)),
    data_dir: str = typer.Option("data/processed"),
    recbole_python: str = typer.Option(str(HERE / ".venv-recbole" / "bin" / "python")),
    recbole_epochs: int = typer.Option(30, help="RecBole epoch cap (it also stops after 10 without gain)"),
    recbole_minutes: float = typer.Option(45.0, help="RecBole stops after the epoch that passes this budget"),
    ours_loss: str = typer.Option("ce,sampled", help="our SASRec's losses to run (ce = RecBole's)"),
    repeats: int = typer.Option(5, help="repeats of each timed kernel (median reported)"),
    llm_model: str = typer.Option("models/llmd4rec_l/round0", help="E4SRec checkpoint to time"),
    export: str = typer.Option("logits/llmd4rec_l/round1/train.parquet"),
    export_teacher: str = typer.Option("models/llmd4rec_l/round1"),
    student: str = typer.Option("models/sasrec"),
    crm: str = typer.Option("models/llmd4rec_c/round2", help="distilled CRM for latency"),
    llm: str = typer.Option("models/llmd4rec_l/round2", help="LLM recommender for latency"),
    repro_profile: str = typer.Option("benchmarks/results/repro_profile.json"),
    run_repro: bool = typer.Option(False, help="run repro_profile.py (dvc repro --force) first"),
) -> None:
    torch.set_num_threads(2)
    wanted = [s.strip() for s in sections.split(",") if s.strip()]
    unknown = sorted(set(wanted) - set(SECTIONS))
    if unknown:
        raise typer.BadParameter(
            f"--sections: unknown {', '.join(unknown)}; choose from {', '.join(SECTIONS)}"
        )
    params = load_params()
    data_path, profile_path = Path(data_dir), Path(repro_profile)
    rows: list[Row] = []
    facts: dict[str, Any] = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="llmd4rec-bench-") as tmp:
        work = Path(tmp)
        if "sasrec" in wanted:
            r, facts["sasrec"] = sasrec_section(
                params,
                data_path,
                work,
                Path(recbole_python),
                recbole_epochs,
                recbole_minutes,
                ours_loss.split(","),
            )
            rows += r
        if "eval" in wanted:
            print("[eval]", flush=True)
            rows += eval_section(
                params, data_path, Path(student), (facts.get("sasrec") or {}).get("recbole"), repeats
            )
        if "llm" in wanted:
            print("[llm]", flush=True)
            r, facts["llm"] = llm_section(params, data_path, Path(llm_model), repeats)
            rows += r
        if "kl" in wanted:
            print("[kl]", flush=True)
            r, facts["kl"] = kl_section(params, data_path, repeats)
            rows += r
        if "topk" in wanted:
            print("[topk]", flush=True)
            r, facts["topk_kl_error"] = topk_section(
                data_path, Path(export), Path(export_teacher), Path(student), sorted({params.T2, 1.0})
            )
            rows += r
        if "latency" in wanted:
            print("[latency]", flush=True)
            rows += latency_section(data_path, Path(crm), Path(llm), 256)
        if "repro" in wanted:
            if run_repro:
                subprocess.run(
                    [
                        sys.executable,
                        str(HERE / "repro_profile.py"),
                        "--out",
                        str(repro_profile),
                        "--",
                        "--force",
                    ],
                    check=True,
                )
            r, facts["repro"] = repro_section(profile_path)
            rows += r
    facts["benchmark_seconds"] = round(time.perf_counter() - started, 1)
    out_path = Path(out)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    write_and_print(out_path, rows, facts)


def write_and_print(out_path: Path, rows: list[Row], facts: dict[str, Any]) -> None:
    tmp_out = out_path.with_suffix(".tmp")
    tmp_out.write_text(json.dumps({"rows": rows, "facts": facts}, indent=1, default=float) + "\n")
    tmp_out.replace(out_path)
    print(f"\n{'figure':<92} {'ours':>10} {'reference':>10} {'unit':>8} {'ratio':>7} {'target':>8}  note")
    for r in rows:
        ratio = "-" if r["ratio"] is None or math.isnan(r["ratio"]) else f"{r['ratio']:.3f}"
        print(
            f"{r['figure']:<92} {fmt(r['ours']):>10} {fmt(r['reference']):>10} {r['unit']:>8} {ratio:>7} "
            f"{r['target']:>8}  {r['note']}"
        )


def retable(
    path: str = typer.Argument(..., help="a performance.json with the sasrec section's curves"),
) -> None:
    """Recompute the SASRec rows of a finished run from the curves it stored (no training), in place."""
    out_path = Path(path)
    doc = json.loads(out_path.read_text())
    stored = doc["facts"].get("sasrec")
    if not stored:
        raise typer.BadParameter(f"{path}: facts.sasrec missing; the run had no sasrec section")
    curves = {k: (v["header"], v["curve"]) for k, v in stored.items()}
    needed = {"seconds", "train_seconds", "peak_rss_gb", *PROTOCOLS}
    for key, (_, curve) in curves.items():
        missing = sorted(needed - set().union(*curve)) if curve else sorted(needed)
        if missing:
            raise typer.BadParameter(f"{path}: facts.sasrec.{key}.curve lacks {', '.join(missing)}")
    fresh = sasrec_rows(curves)
    old = [r for r in doc["rows"] if r["figure"].startswith(("SASRec ", "own history items"))]
    rest = [r for r in doc["rows"] if r not in old]
    write_and_print(out_path, fresh + rest, doc["facts"])


if __name__ == "__main__":
    if sys.argv[1:2] == ["ours-sasrec"]:  # the internal per-process training run of the sasrec section
        del sys.argv[1]
        typer.run(ours_sasrec)
    elif sys.argv[1:2] == ["retable"]:  # re-derive the SASRec rows of a stored run after a fix to them
        del sys.argv[1]
        typer.run(retable)
    else:
        app()
