"""How close is the KL computed from a logit export to the full-catalogue KL? (issue 3 acceptance)

For a sample of the export's instances, rescores them with the producer model (exact float32 logits),
scores them with a student model, and compares KL(teacher || student) at several temperatures computed
from (a) the exact teacher logits and (b) the file's reconstruction (top-K exact + 8-bit tail), and
(c) top-K only with the rest as one bucket, for reference. Prints relative errors.

    python benchmarks/topk_kl_error.py logits/llmd4rec_l/round1/train.parquet \\
        --teacher models/llmd4rec_l/round1 --student models/sasrec --sample 2000
"""

from __future__ import annotations

import numpy as np
import torch
import typer

from llmd4rec_core.batching import left_pad
from llmd4rec_core.data.instances import split_instances
from llmd4rec_core.data.sequences import load_sequences
from llmd4rec_core.distill.kl import tempered_kl
from llmd4rec_core.logits.schema import full_logits, read_logits
from llmd4rec_core.recommenders import load_recommender

app = typer.Typer(add_completion=False)


def bucket_kl(teacher: torch.Tensor, student: torch.Tensor, top: torch.Tensor, t: float) -> torch.Tensor:
    """KL over the teacher's top-K items plus one 'rest' bucket (what a top-K-only file allows)."""
    lp, lq = torch.log_softmax(teacher / t, 1), torch.log_softmax(student / t, 1)
    lpk, lqk = lp.gather(1, top), lq.gather(1, top)
    m_p = (1 - lpk.exp().sum(1)).clamp_min(1e-30)
    m_q = (1 - lqk.exp().sum(1)).clamp_min(1e-30)
    return (lpk.exp() * (lpk - lqk)).sum(1) + m_p * (m_p.log() - m_q.log())


def kl_errors(
    export: str,
    teacher: str,
    student: str,
    data_dir: str,
    sample: int,
    batch_size: int,
    temperatures: list[float],
) -> list[dict[str, float]]:
    """Per temperature: the KL from the export against the exact KL over ``sample`` export rows."""
    data = load_sequences(data_dir)
    file = read_logits(export)
    device = torch.device("cpu")
    t_model = load_recommender(teacher, data.num_items, device)
    s_model = load_recommender(student, data.num_items, device)
    inst = split_instances(data, file.meta["split"], 0 if file.meta["split"] == "train" else 1)
    key = {(int(u), int(p)): i for i, (u, p) in enumerate(zip(inst.user_id, inst.position, strict=True))}
    rows = np.sort(
        np.random.default_rng(0).choice(len(file.rows), min(sample, len(file.rows)), replace=False)
    )
    picked = file.rows.take(rows)
    hist = [
        inst.histories[key[(int(u), int(p))]] for u, p in zip(picked.user_id, picked.position, strict=True)
    ]
    exact, stud = [], []
    with torch.no_grad():
        for s in range(0, len(hist), batch_size):
            h = hist[s : s + batch_size]
            exact.append(t_model.scorer.score_items(left_pad(h, t_model.max_len)).float()[:, 1:])
            stud.append(s_model.scorer.score_items(left_pad(h, s_model.max_len)).float()[:, 1:])
    z_exact, z_student = torch.cat(exact), torch.cat(stud)
    z_file = full_logits(picked)
    top = torch.as_tensor(picked.top_items.astype(np.int64)) - 1
    top_err = float((z_file.gather(1, top) - z_exact.gather(1, top)).abs().max())
    out = []
    for t in temperatures:
        full = tempered_kl(z_exact, z_student, t)
        approx = tempered_kl(z_file, z_student, t)
        bucket = bucket_kl(z_exact, z_student, top, t)
        big = full > 1e-3  # relative error of a near-zero KL is rounding noise (the file is float32 too)
        row_rel = (approx - full).abs()[big] / full[big]
        out.append(
            {
                "T": t,
                "instances": len(hist),
                "top_k": int(file.meta["top_k"]),
                "top_k_max_abs_err": top_err,
                "kl_full": float(full.mean()),
                "kl_file": float(approx.mean()),
                "rel_err_mean": float((approx.mean() - full.mean()).abs() / full.mean()),
                "row_rel_err_p99": float(row_rel.quantile(0.99)),
                "row_rel_err_max": float(row_rel.max()),
                "row_abs_err_max": float((approx - full).abs().max()),
                "kl_bucket": float(bucket.mean()),
                "bucket_rel_err_mean": float((bucket.mean() - full.mean()).abs() / full.mean()),
            }
        )
    return out


@app.command()
def main(
    export: str,
    teacher: str = typer.Option(..., help="checkpoint that produced the export"),
    student: str = typer.Option(..., help="checkpoint of the student model"),
    data_dir: str = "data/processed",
    sample: int = 2000,
    batch_size: int = 64,
    temperatures: str = "0.2,0.6,1.0",
) -> None:
    temps = [float(x) for x in temperatures.split(",")]
    errors = kl_errors(export, teacher, student, data_dir, sample, batch_size, temps)
    e0 = errors[0]
    print(
        f"{e0['instances']} instances, K = {e0['top_k']}, max |file - exact| over top-K "
        f"{e0['top_k_max_abs_err']:.2e}"
    )
    print(
        "T     KL_full    KL_file    rel.err(mean)  row rel.err p99 / max*  row abs.err max  "
        "KL_topK+bucket  rel.err(mean)"
    )
    for e in errors:
        print(
            f"{e['T']:<5} {e['kl_full']:9.4f}  {e['kl_file']:9.4f}  {e['rel_err_mean']:12.4%}  "
            f"{e['row_rel_err_p99']:9.4%} / {e['row_rel_err_max']:8.4%}  {e['row_abs_err_max']:15.2e}  "
            f"{e['kl_bucket']:13.4f}  {e['bucket_rel_err_mean']:12.4%}"
        )
    print("* over rows whose full KL exceeds 1e-3")


if __name__ == "__main__":
    app()
