#!/usr/bin/env bash
# Issue 5: DLLM2Rec(SASRec)'s lambda_d on Beauty, chosen on VALIDATION NDCG@10 (test is printed, never used).
# One `dvc exp run` per value from the committed lock and the same round-1 LLM teacher (T_max=1), so only
# distill_crm@round1 and evaluate_c@round1 rerun: the runs target evaluate_c@round1, so a workspace that
# holds only the round-1 chain (`dvc repro export_logits@round1 evaluate@sasrec`, committed) is enough.
# Run from a clean commit; it resets params.yaml, dvc.lock and metrics/ to HEAD before each value.
# Usage: bash benchmarks/dllm2rec_lambda_grid.sh [lambda ...]   (default: 0.05 0.1 0.2 0.5)
# Writes benchmarks/results/dllm2rec_lambda_grid.json; `dvc exp remove <name>` first to rerun a name.
set -euo pipefail
lambdas=("$@")
[ ${#lambdas[@]} -gt 0 ] || lambdas=(0.05 0.1 0.2 0.5)
names=()
for lam in "${lambdas[@]}"; do
  git checkout HEAD -- params.yaml dvc.lock metrics
  dvc checkout -q || true
  name="dllm2rec-lambda${lam}-r1"
  names+=("$name")
  dvc exp run -n "$name" -S distill.method=dllm2rec -S "distill.dllm2rec.lambda_d=${lam}" \
    -S T_max=1 -S '~loop.rounds.round2' evaluate_c@round1
done
git checkout HEAD -- params.yaml dvc.lock metrics
dvc checkout -q || true
dvc exp show --json | python benchmarks/exp_metrics.py --names "$(IFS=,; echo "${names[*]}")" \
  --metrics-file metrics/llmd4rec_c/round1.json --baseline-file metrics/sasrec.json \
  --out benchmarks/results/dllm2rec_lambda_grid.json
