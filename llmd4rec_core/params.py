"""The schema of ``params.yaml`` (pydantic, ``extra="forbid"``) and a scoped view for the stages.

``params.yaml`` is the single source of hyperparameters: every field below is required (no code
defaults for tracked values). The file is parsed with ruamel.yaml in YAML 1.2 mode, exactly as DVC
parses it, so ``1e-4`` is a float. Each stage reads its params through :class:`ParamsView`, which
refuses keys the stage did not declare; ``tests/pipeline`` checks the declarations against ``dvc.yaml``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from llmd4rec_core.errors import InputError

PARAMS_FILE = "params.yaml"


class StrictModel(BaseModel):
    """Base for every params section: unknown keys and silent type coercion are errors."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class TableParams(StrictModel):
    """Column names (and, for ``dataset: table``, the file) of a raw interaction table."""

    path: str | None  # file name under data/raw/ or the mirror; only read when dataset == "table"
    sha256: str | None  # expected SHA-256 of that file (None: not checked); registered files use theirs
    user_col: str
    item_col: str
    time_col: str
    rating_col: str | None


class DataParams(StrictModel):
    dataset: str  # registered name (beauty|sports|toys|yelp|lastfm|ml-latest-small) or "table"
    kcore: int = Field(gt=0)  # users and items both keep >= kcore interactions (iterated to a fixed point)
    dedup: bool | Literal["auto"]  # drop repeated (user, item) keeping the earliest; auto: tables only
    table: TableParams


class CrmTrainParams(StrictModel):
    """Training-loop params shared by the conventional recommenders (CRMs)."""

    loss: Literal["ce", "sampled", "bce"]  # full-softmax CE | sampled softmax | BCE with one negative
    num_negatives: int = Field(gt=0)  # negatives shared by a batch for loss == "sampled"
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(gt=0)  # user sequences per step
    max_epochs: int = Field(gt=0)
    patience: int = Field(gt=0)  # epochs without a better validation NDCG@10 before stopping
    warmup_epochs: float = Field(ge=0)  # linear LR warm-up, then cosine decay to 0 at max_epochs


class SASRecParams(CrmTrainParams):
    hidden_size: int = Field(gt=0)  # d
    max_len: int = Field(gt=0)  # most recent items fed to the model
    num_layers: int = Field(gt=0)
    num_heads: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)

    @model_validator(mode="after")
    def _heads_divide_hidden(self) -> SASRecParams:
        if self.hidden_size % self.num_heads:
            raise ValueError(f"hidden_size {self.hidden_size} is not divisible by num_heads {self.num_heads}")
        return self


class GRU4RecParams(CrmTrainParams):
    hidden_size: int = Field(gt=0)
    max_len: int = Field(gt=0)
    num_layers: int = Field(gt=0)
    dropout: float = Field(ge=0, lt=1)


class EvalParams(StrictModel):
    ks: list[int] = Field(min_length=1)  # cut-offs for HR@K / NDCG@K
    batch_size: int = Field(gt=0)  # users scored at once (results do not depend on it)
    mask_history: bool  # score the user's input history as -inf (DESIGN.md section 2)

    @model_validator(mode="after")
    def _positive_sorted_ks(self) -> EvalParams:
        if any(k <= 0 for k in self.ks) or sorted(set(self.ks)) != self.ks:
            raise ValueError(f"ks must be positive, unique and increasing, got {self.ks}")
        return self


class LoraParams(StrictModel):
    r: int = Field(gt=0)  # LoRA rank (paper: 8)
    alpha: int = Field(gt=0)  # LoRA scaling numerator (scale = alpha / r)
    dropout: float = Field(ge=0, lt=1)
    target_modules: str | list[str]  # module names, or "all-linear" (every linear layer of the backbone)


class LLMParams(StrictModel):
    """The LLM-centric recommender (E4SRec) and its fine-tuning (paper section 3.3, Eq. 1)."""

    backbone: str  # installed model package, local model directory, or hub id
    load_in: Literal["none", "8bit", "4bit"]  # bitsandbytes quantisation of the frozen backbone
    crm: Literal["sasrec", "gru4rec"]  # CRM whose item table E enters W_in and whose logits teach (Eq. 3)
    lora: LoraParams
    instruction: str  # the prompt text before the history
    item_text: Literal["none", "title"]  # put each item's title beside its embedding
    title_tokens: int = Field(ge=0)  # title tokens per item when item_text == "title"
    max_items: int = Field(gt=0)  # most recent history items in a prompt
    instances_per_user: int = Field(ge=0)  # most recent training prefixes per user (0 = all)
    lr: float = Field(gt=0)
    weight_decay: float = Field(ge=0)
    batch_size: int = Field(gt=0)  # instances per optimizer step
    epochs: int = Field(gt=0)  # epoch limit and the cosine schedule's horizon
    warmup_ratio: float = Field(ge=0, lt=1)  # share of steps with linear LR warm-up


class ExportParams(StrictModel):
    """Logit export to Parquet (llmd4rec_core/logits/schema.py)."""

    top_k: int = Field(gt=0)  # exact top-K logits per instance (the rest is stored 8-bit quantised)
    instances_per_user: int = Field(ge=0)  # training prefixes exported per user (0 = all)
    batch_size: int = Field(gt=0)  # instances scored at once


class DLLM2RecParams(StrictModel):
    """DLLM2Rec's importance-aware ranking distillation (its Eq. 5-11; strategies/ranking_kd.py)."""

    lambda_d: float = Field(ge=0)  # weight of L_d in L_r + lambda_d * L_d (Eq. 11)
    top_k: int = Field(gt=0)  # teacher candidates per row, K (paper 10)
    beta: float = Field(gt=0)  # shape of the position and confidence weights, exp(-r / beta) (Eq. 6-7)
    gamma_p: float = Field(ge=0)  # weight of the position weight (Eq. 9)
    gamma_c: float = Field(ge=0)  # weight of the confidence weight
    gamma_o: float = Field(ge=0)  # weight of the consistency weight
    embedding_alpha: float = Field(ge=0)  # alpha of e_i = b_i + alpha g(z_i) (Eq. 12-13); 0 = no embedding KD
    projector_hidden: int = Field(ge=0)  # g's hidden width (0 = one linear map)


class ALKDRecParams(StrictModel):
    """ALKDRec's max-min instance selection and pairwise distillation (strategies/alkdrec.py)."""

    budget: int = Field(gt=0)  # instances the LLM is asked about (paper 500)
    ratios: list[float]  # assumed effective : similar : incorrect shares (paper 1:5:4)
    mu: float = Field(gt=0)  # g_ef = 1 / rank(df)^mu (paper 10)
    difficulty: Literal["consistency", "target_rank"]  # df_s: the paper's | the teacher CRM's target rank
    policy: Literal["paper", "equalised"]  # p* of Definition 1 | p ~ 1/g_ef on the best k (not in the paper)
    resolve_each_draw: bool  # re-solve the game on the undrawn instances before each draw (authors' code)
    top_k: int = Field(gt=0, le=25)  # the LLM's ranked items per instance (paper 25)
    lambda_kd: float = Field(ge=0)  # weight of Eq. 1's loss next to L_rec
    num_negatives: int = Field(gt=0)  # negatives per positive in Eq. 1 (paper 1)

    @field_validator("ratios")
    @classmethod
    def _ratios_valid(cls, v: list[float]) -> list[float]:
        if len(v) != 3 or min(v) < 0 or sum(v) <= 0:
            raise ValueError(
                "ratios must be 3 numbers >= 0 (effective, similar, incorrect) with a positive sum"
            )
        return v


class DistillParams(StrictModel):
    """Which LLM -> CRM distillation ``distill_crm`` trains with (same teacher LLM for all)."""

    method: Literal[
        "llmd4rec", "dllm2rec", "alkdrec", "none"
    ]  # Eq. 6-9 KL | DLLM2Rec | ALKDRec | L_rec alone
    dllm2rec: DLLM2RecParams
    alkdrec: ALKDRecParams


class DistributedParams(StrictModel):
    """Data-parallel LLM stages (llmd4rec_core/distributed.py): fine-tune and export."""

    nproc: int = Field(gt=0)  # processes (one device each); > 1 re-launches the stage under torchrun
    backend: Literal["auto", "gloo", "nccl"]  # process-group backend; auto = nccl with CUDA, else gloo


ROUND_NAME = re.compile(r"round(0|[1-9][0-9]*)")


def round_index(name: str, where: str = "round") -> int:
    """``"round2"`` -> 2; anything else is an error naming ``where`` (an option or key) and the value."""
    match = ROUND_NAME.fullmatch(name)
    if match is None:
        raise InputError(f"{where}: round name {name!r} is not of the form round<N>")
    return int(match.group(1))


class LoopParams(StrictModel):
    """Algorithm 1 unrolled for DVC (no cycles, no arithmetic): each round names the round it continues
    from; round0 is the pretrained CRM with a freshly initialised LLM (Algorithm 1, lines 1-2)."""

    rounds: dict[str, str]  # {"round1": "round0", ..., "round<T_max>": "round<T_max - 1>"}
    llm_epochs: int = Field(gt=0)  # epochs of LLM rounds >= 2 (round 1 trains llm.epochs)
    crm_warm_start: bool  # round t's CRM starts from round t-1's weights (False: fresh init, same seed)
    refit_w_in: bool  # embedding update re-fits W_in to the new table (llm/embedding_update.py)
    kl_rows_per_user: int = Field(ge=0)  # teacher rows per user and CRM step, drawn at random (0 = all)


class Params(StrictModel):
    seed: int
    deterministic: bool  # deterministic torch kernels only (seeding.set_determinism)
    T1: float = Field(gt=0)  # temperature of the downward (CRM -> LLM) KL, Eq. 2
    gamma: float = Field(ge=0)  # weight of the downward KL, Eq. 5
    T2: float = Field(gt=0)  # temperature of the upward (LLM -> CRM) KL, Eq. 6
    beta: float = Field(ge=0)  # weight of the upward KL, Eq. 9
    T_max: int = Field(gt=0)  # rounds of Algorithm 1 (1 = the paper's "w/o loop")
    sample_weights: bool  # Eq. 4 / Eq. 8 weights (False: w = 1, the paper's "w/o sample weights")
    embedding_update: bool  # round t's LLM reads round t-1's CRM item table (False: "w/o embedding update")
    kl_mask_history: bool  # both KLs leave the prefix's own items out of both distributions (distill/kl.py)
    loop: LoopParams
    distill: DistillParams
    data: DataParams
    sasrec: SASRecParams
    gru4rec: GRU4RecParams
    llm: LLMParams
    export: ExportParams
    distributed: DistributedParams
    eval: EvalParams

    @model_validator(mode="after")
    def _rounds_unroll_t_max(self) -> Params:
        expected = {f"round{t}": f"round{t - 1}" for t in range(1, self.T_max + 1)}
        if self.loop.rounds != expected:
            hint = ", ".join(f"{k}: {v}" for k, v in expected.items())
            raise ValueError(
                f"loop.rounds must unroll T_max={self.T_max} rounds as {{{hint}}}, got {self.loop.rounds} "
                "(README: changing the number of rounds)"
            )
        return self


def read_yaml(path: str | Path) -> Any:
    """Parse YAML the way DVC does (ruamel.yaml, YAML 1.2); errors name the file and line."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: params file not found")
    try:
        return YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        raise InputError(f"{path}{where}: invalid YAML: {getattr(exc, 'problem', exc)}") from None


def load_params(path: str | Path = PARAMS_FILE) -> Params:
    """Read and validate ``params.yaml``; the first problem becomes a one-line :class:`InputError`."""
    raw = read_yaml(path)
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors()[0]
        field = ".".join(str(p) for p in err["loc"]) or "<root>"
        msg = "unknown key" if err["type"] == "extra_forbidden" else err["msg"]
        raise InputError(f"{path}: {field}: {msg}") from None


class ParamsView:
    """Read-only view of :class:`Params` that only exposes the dotted keys a stage declared.

    ``ParamsView(p, {"seed", "sasrec", "eval.ks"}).eval.ks`` works; ``.eval.batch_size`` raises, so a
    stage cannot silently depend on a param that ``dvc.yaml`` does not list for it.
    """

    def __init__(self, model: BaseModel, allowed: set[str] | frozenset[str], prefix: str = "") -> None:
        self._model = model
        self._allowed = frozenset(allowed)
        self._prefix = prefix

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        key = f"{self._prefix}{name}"
        value = getattr(self._model, name)
        parts = key.split(".")
        if any(".".join(parts[:i]) in self._allowed for i in range(1, len(parts) + 1)):
            return value
        if isinstance(value, BaseModel) and any(a.startswith(key + ".") for a in self._allowed):
            return ParamsView(value, self._allowed, key + ".")
        raise KeyError(f"params key {key!r} is not declared by this stage")
