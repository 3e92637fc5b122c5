"""Instruction prompts with item embeddings spliced in (E4SRec input layer, paper section 3.3).

A prompt is ``prefix tokens + (item slot [+ title tokens]) per history item + suffix tokens``. An item
slot is a position whose input embedding is ``W_in E[item]`` (Eq. 1) instead of a token embedding; the
user representation g_u is the hidden state of the prompt's final position. Rows are right-padded: with an
attention mask, padding after the final position changes nothing for encoders or causal decoders.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase


@dataclass(frozen=True)
class PromptBatch:
    token_ids: torch.Tensor  # [B, L] int64 token ids (pad id at item slots and padding)
    item_ids: torch.Tensor  # [B, L] int64 item id at item slots, 0 elsewhere
    attention_mask: torch.Tensor  # [B, L] int64, 1 = real position
    last_index: torch.Tensor  # [B] int64 index of each row's final real position

    def to(self, device: torch.device) -> PromptBatch:
        return PromptBatch(
            *(t.to(device) for t in (self.token_ids, self.item_ids, self.attention_mask, self.last_index))
        )


@dataclass(frozen=True)
class PromptTemplate:
    prefix: tuple[int, ...]  # tokens before the history (e.g. [CLS] + instruction)
    suffix: tuple[int, ...]  # tokens after the history (e.g. [SEP]); may be empty
    pad_id: int
    max_items: int  # the most recent items that enter the prompt
    item_text: tuple[tuple[int, ...], ...] | None = (
        None  # per item id (0 unused): title tokens after its slot
    )

    def row(self, history: np.ndarray) -> tuple[list[int], list[int]]:
        """(token ids, item ids) of one prompt; history holds item ids in time order, 0s ignored."""
        items = [int(i) for i in history if i != 0][-self.max_items :]
        tokens, slots = list(self.prefix), [0] * len(self.prefix)
        for item in items:
            tokens.append(self.pad_id)
            slots.append(item)
            if self.item_text is not None:
                text = self.item_text[item]
                tokens += text
                slots += [0] * len(text)
        tokens += self.suffix
        slots += [0] * len(self.suffix)
        return tokens, slots

    def batch(self, histories: Sequence[np.ndarray]) -> PromptBatch:
        rows = [self.row(h) for h in histories]
        width = max(len(t) for t, _ in rows)
        tokens = np.full((len(rows), width), self.pad_id, dtype=np.int64)
        slots = np.zeros((len(rows), width), dtype=np.int64)
        mask = np.zeros((len(rows), width), dtype=np.int64)
        for r, (t, s) in enumerate(rows):
            tokens[r, : len(t)], slots[r, : len(s)], mask[r, : len(t)] = t, s, 1
        last = np.array([len(t) - 1 for t, _ in rows], dtype=np.int64)
        return PromptBatch(*(torch.from_numpy(a) for a in (tokens, slots, mask, last)))


def split_special(tokenizer: PreTrainedTokenizerBase, text: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Tokenise ``text`` with the model's special tokens; trailing specials (BERT's [SEP]) become the
    suffix so the history sits inside them: [CLS] text <items> [SEP]. Decoders usually add none."""
    ids = list(tokenizer(text, add_special_tokens=True)["input_ids"])
    special = set(tokenizer.all_special_ids)
    cut = len(ids)
    while cut > 0 and ids[cut - 1] in special:
        cut -= 1
    return tuple(ids[:cut]), tuple(ids[cut:])


def build_template(
    tokenizer: PreTrainedTokenizerBase,
    instruction: str,
    max_items: int,
    titles: Sequence[str] | None = None,
    title_tokens: int = 0,
) -> PromptTemplate:
    """The prompt template; ``titles`` (index = item id, 0 unused) adds up to ``title_tokens`` per item."""
    prefix, suffix = split_special(tokenizer, instruction)
    pad_id = tokenizer.pad_token_id
    if pad_id is None:
        pad_id = tokenizer.eos_token_id if tokenizer.eos_token_id is not None else 0
    item_text = None
    if titles is not None:
        encoded = tokenizer(list(titles), add_special_tokens=False)["input_ids"]
        item_text = tuple(tuple(ids[:title_tokens]) for ids in encoded)
    return PromptTemplate(prefix, suffix, int(pad_id), max_items, item_text)
