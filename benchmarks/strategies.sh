#!/usr/bin/env bash
# Issue 5: every LLM -> CRM strategy on the same data and the same round-1 LLM teacher, one experiment each
# (`dvc exp run`, one round: T_max=1), then one report table with the LLM compute each needed.
# Run from a clean commit after `dvc repro` of the default pipeline; results in docs/results.md section 7.
# Names must be new: `dvc exp remove <name>` first to rerun one. (In docs/results.md, alkdrec-r1 is the
# lambda_kd = 1 run, made when 1 was the default.)
set -euo pipefail
one_round=(-S T_max=1 -S '~loop.rounds.round2')
restore() {  # back to the committed params, lock, metrics and outputs before the next experiment
  git checkout HEAD -- params.yaml dvc.lock metrics
  dvc checkout -q || true  # outputs missing from the cache (stages never run here) stay missing
}
run() {
  restore
  dvc exp run -n "$1" "${@:2}" "${one_round[@]}"
}
run llmd4rec-r1
run dllm2rec-r1 -S distill.method=dllm2rec
run dllm2rec-rank-only-r1 -S distill.method=dllm2rec -S distill.dllm2rec.embedding_alpha=0
run alkdrec-lambda1-r1 -S distill.method=alkdrec -S distill.alkdrec.lambda_kd=1
run alkdrec-lambda0.02-r1 -S distill.method=alkdrec -S distill.alkdrec.lambda_kd=0.02
restore
# only these experiments, the default method first (the report labels the others by their params diff)
dvc exp show --json | python -c '
import json, sys
names = ["llmd4rec-r1", "dllm2rec-r1", "dllm2rec-rank-only-r1", "alkdrec-r1", "alkdrec-lambda1-r1",
         "alkdrec-lambda0.02-r1"]
base = json.load(sys.stdin)[-1]
revs = {r["name"]: r for e in base.get("experiments") or [] for r in e["revs"] if r.get("name") in names}
json.dump([{"rev": "strategies", "experiments": [{"revs": [revs[n]]} for n in names if n in revs]}],
          sys.stdout, indent=1)
' > benchmarks/results/strategies_exp_show.json
python -m stages.report --exp-show benchmarks/results/strategies_exp_show.json --out-dir benchmarks/results/strategies
