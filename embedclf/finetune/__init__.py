"""Full fine-tuning of the encoder with a classification layer, for comparison with the cheap heads.

The network is the encoder's transformer → mean pooling → dropout → one linear layer over every
label column (one block per target, as the heads). The loss is the MLP head's,
:class:`embedclf.heads.losses.BlockLoss`: per row, softmax cross-entropy per multi-class block plus
BCE with logits summed over a multi-label block's columns (``pos_weight='balanced'`` weighs rare
labels' positives up), averaged over rows. AdamW, linear warm-up and decay, gradient clipping at
1.0, mixed precision on CUDA.

The result is an ordinary model folder: the fine-tuned transformer is saved inside it (safetensors,
loadable as a SentenceTransformer) and the classification layer becomes a linear
:class:`~embedclf.heads.mlp.MLPHead`, so ``predict``, ``evaluate`` and ``--cooccur`` work unchanged
and ``embedclf encode --model MODEL_DIR`` encodes with the fine-tuned transformer.

Modules: :mod:`.settings` (the validated settings), :mod:`.network` (the network and what a folder
keeps of it), :mod:`.trainer` (the training loop), :mod:`.checkpoints` (resuming), :mod:`.run`
(:func:`finetune`, which trains and writes the folder).
"""

from embedclf.finetune.run import finetune, finetune_files
from embedclf.finetune.settings import FineTuneSettings
from embedclf.finetune.trainer import FineTuner, block_loss
from embedclf.heads.losses import BlockLoss

__all__ = ["BlockLoss", "FineTuneSettings", "FineTuner", "block_loss", "finetune", "finetune_files"]
