"""The LLM-centric recommender (E4SRec-style, paper section 3.3): backbone + LoRA, prompts, training."""
