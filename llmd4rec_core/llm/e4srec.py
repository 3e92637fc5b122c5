"""E4SRec (paper section 3.3): frozen LLM + LoRA, projected CRM item embeddings in, item head out.

F_proj = W_in E                       (Eq. 1; E: the CRM's item table, frozen here)
g_u    = LLM(P_u, F_proj)[final]      (hidden state of the prompt's final position)
y_l    = g_u^T W_out                  (bias-free head over every item)
"""

from __future__ import annotations

from contextlib import nullcontext

import torch
from torch import nn

from llmd4rec_core.llm.prompt import PromptBatch, PromptTemplate


class E4SRec(nn.Module):
    def __init__(
        self, backbone: nn.Module, item_table: torch.Tensor, hidden_size: int, template: PromptTemplate
    ):
        super().__init__()
        self.backbone = backbone  # PeftModel around the frozen base model
        self.template = template
        self.register_buffer("item_table", item_table.detach().clone().float())  # [I + 1, d], frozen CRM E
        self.w_in = nn.Linear(item_table.shape[1], hidden_size, bias=False)  # W_in: d -> D
        self.w_out = nn.Linear(hidden_size, item_table.shape[0] - 1, bias=False)  # W_out: D -> I (items 1..I)

    @property
    def num_items(self) -> int:
        return self.w_out.out_features

    @property
    def max_len(self) -> int:
        return self.template.max_items

    def _autocast(self, device: torch.device) -> torch.autocast | nullcontext[None]:
        return torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else nullcontext()

    def user_representation(self, prompt: PromptBatch) -> torch.Tensor:
        """g_u: [B, D] float32."""
        embed = self.backbone.get_input_embeddings()
        device = self.w_in.weight.device
        prompt = prompt.to(device)
        with self._autocast(device):
            text = embed(prompt.token_ids)  # [B, L, D]
            items = self.w_in(self.item_table[prompt.item_ids])  # [B, L, D]  (Eq. 1)
            inputs = torch.where((prompt.item_ids > 0)[..., None], items.to(text.dtype), text)
            hidden = self.backbone(
                inputs_embeds=inputs, attention_mask=prompt.attention_mask
            ).last_hidden_state
        rows = torch.arange(hidden.shape[0], device=device)
        return hidden[rows, prompt.last_index].float()  # [B, D]

    def forward(self, prompt: PromptBatch) -> torch.Tensor:
        """y_l over items 1..I: [B, I] float32 (column j is item j + 1)."""
        return self.w_out(self.user_representation(prompt))

    def score_items(self, input_ids: torch.Tensor) -> torch.Tensor:
        """CRM scoring interface: left-padded histories [B, L] -> [B, I + 1]; column 0 (padding) = -inf."""
        logits = self(self.template.batch(list(input_ids.cpu().numpy())))
        pad = torch.full((logits.shape[0], 1), float("-inf"), device=logits.device)
        return torch.cat([pad, logits], dim=1)

    def trainable_state(self) -> dict[str, torch.Tensor]:
        """LoRA adapters, W_in and W_out (what fine-tuning changes), detached copies."""
        names = {n for n, p in self.named_parameters() if p.requires_grad}
        return {n: t.detach().clone() for n, t in self.state_dict().items() if n in names}
