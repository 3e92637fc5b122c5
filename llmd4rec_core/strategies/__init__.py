"""Alternative LLM→CRM distillation strategies (issue 5): DLLM2Rec and ALKDRec."""
