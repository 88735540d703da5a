"""The model: tokens in, logits out, and what the model's config says they mean.

    tokenization.py  texts -> token ids (the model's tokenizer.json; no transformers)
    engines.py       token ids -> logits: torch or OpenVINO, fp32/bf16/int8; what this machine can run; exports
    inference.py     one batch: length groups, padding, the engine
    scoring.py       labels, score function (softmax, sigmoid, raw), predicted class: from config.json
    cpu.py           cores this process may use, the CPU's instruction sets
"""
