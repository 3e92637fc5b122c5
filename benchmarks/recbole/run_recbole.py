"""RecBole's SASRec on our data, epoch by epoch, for benchmarks/performance.py (runs in RecBole's venv).

Reads `<data_dir>/<dataset>/<dataset>.inter` (written by performance.py from data/processed) and a JSON
config (RecBole's own keys), trains with RecBole's Trainer one epoch at a time and writes one JSON line
per epoch to --out: cumulative wall seconds, train and validation seconds, validation NDCG@10 and HR@10
(RecBole's full-sort evaluation, which does not mask the history of sequential models), the same two
metrics under our protocol (DESIGN.md section 2: each user's whole history masked with -inf, pessimistic
ties), the mean number of the user's own history items in the unmasked top 10, and the peak RSS of this
process. The masked evaluation is timed apart and left out of the clock, which holds RecBole's own
training and validation only. The test split is never evaluated. Stops after --epochs, after the epoch that
takes the clock past --max-seconds, or after RecBole's `stopping_step` epochs without a better
validation NDCG@10.

    .venv-recbole/bin/python run_recbole.py --config cfg.json --out curve.jsonl
"""

from __future__ import annotations

import argparse
import json
import resource
import time

import numpy as np
import torch


def user_histories(dataset, inter_path: str, uid_field: str, iid_field: str) -> dict[int, np.ndarray]:
    """{RecBole's internal user id: its internal item ids in time order}, read from the atomic file
    (performance.py writes the position in the sequence as the timestamp) and mapped with RecBole's own
    token tables, so that nothing depends on how RecBole rewrote its interaction table."""
    table = np.loadtxt(inter_path, dtype=str, delimiter="\t", skiprows=1, ndmin=2)  # user, item, position
    order = np.lexsort((table[:, 2].astype(float), table[:, 0]))
    users = dataset.token2id(uid_field, table[order, 0])
    items = dataset.token2id(iid_field, table[order, 1])
    cuts = np.flatnonzero(np.diff(users)) + 1
    return {int(u[0]): i for u, i in zip(np.split(users, cuts), np.split(items, cuts), strict=True)}


def pessimistic_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """1 + number of other items scored >= the target (column 0, padding, is -inf)."""
    return (scores >= scores.gather(1, targets[:, None])).sum(1)


@torch.no_grad()
def our_protocol(model, valid_data, histories: dict[int, np.ndarray], uid_field: str) -> dict[str, float]:
    """Validation NDCG@10 / HR@10 masked and unmasked, computed the way llmd4rec computes them, and the
    mean count of history items in the unmasked top 10. The validation target is each user's
    second-to-last item and its history everything before it (RecBole's 'LS' split)."""
    model.eval()
    ranks = {"masked": [], "unmasked": []}
    in_top10 = []
    for interaction, _, _, positive_i in valid_data:
        scores = model.full_sort_predict(interaction).view(len(positive_i), -1).float()  # [B, I + 1]
        scores[:, 0] = float("-inf")
        hist = [histories[int(u)][:-2] for u in interaction[uid_field]]
        expect = torch.as_tensor([int(histories[int(u)][-2]) for u in interaction[uid_field]])
        if not torch.equal(expect, positive_i):
            raise SystemExit("run_recbole: RecBole's validation targets are not the second-to-last items")
        width = max(len(h) for h in hist)
        pad = torch.zeros(len(hist), width, dtype=torch.long)
        for row, h in enumerate(hist):
            pad[row, : len(h)] = torch.as_tensor(h)
        top10 = scores.topk(10, dim=1).indices  # [B, 10]
        in_top10.append((top10[:, :, None] == pad[:, None, :]).any(-1).sum(1).float())
        ranks["unmasked"].append(pessimistic_ranks(scores, positive_i))
        ranks["masked"].append(pessimistic_ranks(scores.scatter(1, pad, float("-inf")), positive_i))
    out = {"history_items_in_top10": float(torch.cat(in_top10).mean())}
    for name, parts in ranks.items():
        r = torch.cat(parts).double()
        hit = r <= 10
        prefix = "valid" if name == "unmasked" else "valid_masked"
        out[f"{prefix}_ndcg@10"] = float((hit / torch.log2(r + 1)).mean())
        out[f"{prefix}_hr@10"] = float(hit.double().mean())
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", required=True, help="JSON file of RecBole config keys")
    ap.add_argument("--out", required=True, help="JSON lines, one per epoch")
    ap.add_argument("--epochs", type=int, required=True, help="epoch cap")
    ap.add_argument("--max-seconds", type=float, default=float("inf"), help="wall-clock budget")
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
    inter_path = f"{config['data_path']}/{config['dataset']}.inter"
    histories = user_histories(dataset, inter_path, config["USER_ID_FIELD"], config["ITEM_ID_FIELD"])
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
            ours = our_protocol(model, valid_data, histories, config["USER_ID_FIELD"])
            t3 = time.perf_counter()
            row = {
                "epoch": epoch + 1,
                "loss": float(loss if not isinstance(loss, tuple) else sum(loss)),
                "train_seconds": round(t1 - t0, 3),
                "valid_seconds": round(t2 - t1, 3),
                "seconds": round(clock, 3),
                "valid_ndcg@10": float(result["ndcg@10"]),
                "valid_hr@10": float(result["hit@10"]),
                "ours_valid_ndcg@10": ours["valid_ndcg@10"],  # unmasked, pessimistic ties: RecBole's check
                "valid_masked_ndcg@10": ours["valid_masked_ndcg@10"],
                "valid_masked_hr@10": ours["valid_masked_hr@10"],
                "history_items_in_top10": ours["history_items_in_top10"],
                "masked_eval_seconds": round(t3 - t2, 3),
                "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6, 3),
            }
            out.write(json.dumps(row) + "\n")
            out.flush()
            print(json.dumps(row), flush=True)
            if clock >= args.max_seconds:
                break
            if score > best:
                best, bad = score, 0
            else:
                bad += 1
                if bad >= config["stopping_step"]:
                    break


if __name__ == "__main__":
    main()
