"""The fine-tuned network, and what a model folder keeps of it.

The network is the encoder's transformer → masked mean pooling → dropout → one linear layer over
every label column. After training, the transformer is saved as a SentenceTransformer folder
(Transformer → mean Pooling) and the linear layer becomes a linear :class:`MLPHead`, so the folder
encodes and predicts like any other.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np


def build_network(path: Path, n_outputs: int, dropout: float):
    """Transformer (from ``path``) → masked mean pooling → dropout → linear over ``n_outputs`` columns."""
    import torch
    from transformers import AutoModel

    class FineTuneNet(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.encoder = AutoModel.from_pretrained(str(path))
            self.dropout = torch.nn.Dropout(dropout)
            self.classifier = torch.nn.Linear(self.encoder.config.hidden_size, n_outputs)

        def pooled(self, input_ids, attention_mask, **extra):
            hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask, **extra).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)

        def forward(self, batch):
            return self.classifier(self.dropout(self.pooled(**batch)))

    return FineTuneNet()


def save_encoder(net, tokenizer, directory: Path, max_length: int) -> None:
    """The fine-tuned transformer as a SentenceTransformer folder: Transformer → mean Pooling."""
    net.encoder.save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    (directory / "1_Pooling").mkdir(exist_ok=True)
    (directory / "1_Pooling" / "config.json").write_text(json.dumps(
        {"embedding_dimension": net.encoder.config.hidden_size, "pooling_mode": "mean"}))
    (directory / "modules.json").write_text(json.dumps([
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"}]))
    (directory / "sentence_bert_config.json").write_text(json.dumps(
        {"max_seq_length": max_length, "do_lower_case": False}))


def linear_head(net, layout):
    """The classification layer as a fitted linear MLPHead (dropout is off at inference)."""
    from embedclf.heads.mlp import MLPHead

    head = MLPHead(hidden=())
    layer = net.classifier
    head.weights_ = [layer.weight.detach().cpu().numpy().T.astype(np.float32)]
    head.biases_ = [layer.bias.detach().cpu().numpy().astype(np.float32)]
    head.layout_, head.classes_, head.target_dtype_ = layout, None, "int8"
    head.n_features_in_ = net.encoder.config.hidden_size
    head.loss_curve_, head.validation_loss_curve_, head.best_epoch_, head.n_epochs_ = [], [], None, 0
    return head
