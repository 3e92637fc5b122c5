"""The results report: our metrics beside the paper's Table 2, per round and per experiment."""
