"""The LLMD4Rec paper's Table 2 (test, full ranking, their data filtering and backbones; Qwen2.5-7B for
E4SRec and LLMD4Rec_L). These are the paper's numbers, transcribed from ``../shared/papers/llmd4rec.txt``,
shown beside ours for reference only: never mixed into our own results."""

from __future__ import annotations

METRICS = ("hr@5", "hr@10", "hr@20", "ndcg@5", "ndcg@10", "ndcg@20")

# dataset -> model -> HR@5, HR@10, HR@20, NDCG@5, NDCG@10, NDCG@20 (paper Table 2)
_TABLE_2 = {
    "beauty": {
        "gru4rec": (0.0165, 0.0286, 0.0526, 0.0102, 0.0141, 0.0201),
        "sasrec": (0.0260, 0.0504, 0.0855, 0.0125, 0.0204, 0.0292),
        "dllm2rec": (0.0316, 0.0553, 0.0884, 0.0167, 0.0243, 0.0326),
        "llmd4rec_c": (0.0453, 0.0758, 0.1157, 0.0256, 0.0354, 0.0454),
        "e4srec": (0.0518, 0.0749, 0.1069, 0.0360, 0.0434, 0.0515),
        "llmd4rec_l": (0.0553, 0.0814, 0.1150, 0.0379, 0.0463, 0.0547),
    },
    "sports": {
        "gru4rec": (0.0110, 0.0187, 0.0312, 0.0068, 0.0092, 0.0123),
        "sasrec": (0.0173, 0.0307, 0.0497, 0.0091, 0.0134, 0.0182),
        "dllm2rec": (0.0181, 0.0333, 0.0521, 0.0097, 0.0144, 0.0191),
        "llmd4rec_c": (0.0284, 0.0468, 0.0715, 0.0162, 0.0221, 0.0283),
        "e4srec": (0.0245, 0.0373, 0.0557, 0.0168, 0.0211, 0.0256),
        "llmd4rec_l": (0.0304, 0.0474, 0.0692, 0.0197, 0.0252, 0.0307),
    },
    "toys": {
        "gru4rec": (0.0158, 0.0275, 0.0454, 0.0095, 0.0132, 0.0177),
        "sasrec": (0.0427, 0.0664, 0.0989, 0.0221, 0.0297, 0.0378),
        "dllm2rec": (0.0447, 0.0708, 0.1047, 0.0231, 0.0316, 0.0401),
        "llmd4rec_c": (0.0552, 0.0815, 0.1189, 0.0340, 0.0398, 0.0495),
        "e4srec": (0.0553, 0.0776, 0.1072, 0.0403, 0.0475, 0.0549),
        "llmd4rec_l": (0.0606, 0.0889, 0.1211, 0.0425, 0.0516, 0.0598),
    },
    "yelp": {
        "gru4rec": (0.0196, 0.0326, 0.0543, 0.0121, 0.0162, 0.0217),
        "sasrec": (0.0223, 0.0390, 0.0661, 0.0141, 0.0194, 0.0262),
        "dllm2rec": (0.0259, 0.0404, 0.0662, 0.0179, 0.0225, 0.0287),
        "llmd4rec_c": (0.0391, 0.0626, 0.0985, 0.0257, 0.0332, 0.0423),
        "e4srec": (0.0309, 0.0478, 0.0735, 0.0211, 0.0265, 0.0330),
        "llmd4rec_l": (0.0366, 0.0582, 0.0901, 0.0244, 0.0314, 0.0393),
    },
}


def paper_metrics(dataset: str, model: str) -> dict[str, float] | None:
    """The paper's test metrics of ``model`` on ``dataset`` (None when Table 2 has no such cell)."""
    values = _TABLE_2.get(dataset, {}).get(model)
    return None if values is None else dict(zip(METRICS, values, strict=True))
