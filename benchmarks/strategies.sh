#!/usr/bin/env bash
# Issue 5: every LLM -> CRM strategy on the same data and the same round-1 LLM teacher, one experiment each
# (`dvc exp run`, one round: T_max=1), then one report table with the LLM compute each needed.
# Run from a clean commit after `dvc repro` of the default pipeline; results in docs/results.md section 7.
set -euo pipefail
one_round=(-S T_max=1 -S '~loop.rounds.round2')
restore() {  # back to the committed params, lock, metrics and outputs before the next experiment
  git checkout -- params.yaml dvc.lock metrics && dvc checkout -q
}
run() {
  restore
  dvc exp run -n "$1" "${@:2}" "${one_round[@]}"
}
run llmd4rec-r1
run dllm2rec-r1 -S distill.method=dllm2rec
run dllm2rec-rank-only-r1 -S distill.method=dllm2rec -S distill.dllm2rec.embedding_alpha=0
run alkdrec-r1 -S distill.method=alkdrec
restore
dvc exp show --json > benchmarks/results/strategies_exp_show.json
python -m stages.report --exp-show benchmarks/results/strategies_exp_show.json --out-dir benchmarks/results/strategies
