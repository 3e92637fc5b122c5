"""RecBole's SASRec on our data, epoch by epoch, for benchmarks/performance.py (runs in RecBole's venv).

Reads `<data_dir>/<dataset>/<dataset>.inter` (written by performance.py from data/processed) and a JSON
config (RecBole's own keys), trains with RecBole's Trainer one epoch at a time and writes one JSON line
per epoch to --out: cumulative wall seconds, train and validation seconds, validation NDCG@10 and HR@10
(RecBole's full-sort evaluation, which does not mask the history of sequential models) and the peak
RSS of this process. The test split is never evaluated. Stops after --epochs or RecBole's
`stopping_step` epochs without a better validation NDCG@10.

    .venv-recbole/bin/python run_recbole.py --config cfg.json --out curve.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import torch


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="JSON file of RecBole config keys")
    ap.add_argument("--out", required=True, help="JSON lines, one per epoch")
    ap.add_argument("--epochs", type=int, required=True, help="epoch cap")
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    from recbole.config import Config
    from recbole.data import create_dataset, data_preparation
    from recbole.model.sequential_recommender import SASRec
    from recbole.trainer import Trainer
    from recbole.utils import init_seed

    with open(args.config) as fh:
        cfg = json.load(fh)
    start = time.perf_counter()
    config = Config(model="SASRec", dataset=cfg.pop("dataset"), config_dict=cfg)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    model = SASRec(config, train_data.dataset).to(config["device"])
    trainer = Trainer(config, model)
    setup = time.perf_counter() - start
    header = {
        "setup_seconds": round(setup, 2),
        "train_instances": len(train_data.dataset),
        "valid_users": len(valid_data.dataset),
        "params": sum(p.numel() for p in model.parameters()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
    }
    best, bad = -1.0, 0
    clock = 0.0  # training + validation seconds, setup excluded (ours excludes data loading too)
    with open(args.out, "w") as out:
        out.write(json.dumps(header) + "\n")
        for epoch in range(args.epochs):
            t0 = time.perf_counter()
            loss = trainer._train_epoch(train_data, epoch, show_progress=False)
            t1 = time.perf_counter()
            score, result = trainer._valid_epoch(valid_data, show_progress=False)
            t2 = time.perf_counter()
            clock += t2 - t0
            row = {
                "epoch": epoch + 1,
                "loss": float(loss if not isinstance(loss, tuple) else sum(loss)),
                "train_seconds": round(t1 - t0, 3),
                "valid_seconds": round(t2 - t1, 3),
                "seconds": round(clock, 3),
                "valid_ndcg@10": float(result["ndcg@10"]),
                "valid_hr@10": float(result["hit@10"]),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)
            if score > best:
                best, bad = score, 0
            else:
                bad += 1
                if bad >= config["stopping_step"]:
                    break


if __name__ == "__main__":
    main()
