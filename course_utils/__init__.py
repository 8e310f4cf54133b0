"""course_utils: what several weeks of the fine-tuning course reuse.

Import what you need explicitly, e.g. ``from course_utils.metrics import exact_match``. Modules:

* lesson: ``start(...)`` and ``run.finish()``, the top and bottom of every notebook
* env: profiles, device, seeds, the precision rule
* data: the bundled tiny world (files, people, token blocks)
* tokenizer: byte-level BPE and the chat template
* models: tiny Llama shapes, SmolLM2-135M's shape, loading by Hub id or folder
* cache: the atomic artifact cache and atomic JSON files
* checkpoints: the cached tokenizer, tiny base model and offline SmolLM2, one builder each
* training: the tiny-model training loop
* sft: the tiny SFT model (TRL), chat-prompt generation, accuracy per group
* rlhf: week 3's chatty SFT start and reward model
* ppo: week 3's PPO written out, TRL's RLOO, and their cached policies
* dpo: week 4's DPO policy (TRL's DPOTrainer), cached
* adapters: new task types for the SFT model, the LoRA recipe (peft), the cached LoRA adapters
* metrics: loss, perplexity, exact match, answer choices, the fact probe
* labeller: the scripted labeller's rule (correct > polite > concise) that ranked the preference data
* measure: wall time, peak memory, metrics.json
* memory: bytes per parameter when training (full, 8-bit, LoRA, QLoRA), ZeRO's per-device memory and traffic,
  and what an optimizer holds
* dist_train: week 8's multi-process training script (one process, DDP, FSDP2; each beside its by-hand version)
* launch_sft: the course's SFT as a script for ``accelerate launch`` with the configs in ``configs/``

The tools that run, test and measure the course (``make course``, ``make bench``, ``make data``) live
in ``tools/`` beside the package; nothing here imports them.
"""

import logging
import warnings

from transformers.utils import logging as _transformers_logging

# bitsandbytes 0.50 (imported by peft and trl) logs two harmless warnings on a CPU: at import, that an optional
# kernel from the Hub is missing (it falls back to its own code; this would be a learner's first output), and at
# every int8 matmul, that inputs are cast to fp16 inside its int8 layer. Quiet them wherever course_utils is imported
# first (a notebook that needs bitsandbytes itself imports it after course_utils).
for _name in ("bitsandbytes.backends.cpu.ops", "bitsandbytes.autograd._functions"):
    logging.getLogger(_name).setLevel(logging.ERROR)
# peft and TRL still call a transformers method that transformers 5 renamed; the FutureWarning is theirs to fix and
# nothing a learner can act on.
warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated", category=FutureWarning)

# transformers draws a bar for every checkpoint it loads ("Loading weights") or saves ("Writing model shards"): a
# second each, dozens per lesson. Off; the training bars (the Trainer's own callbacks) are not these and stay.
_transformers_logging.disable_progress_bar()

__version__ = "0.1.0"
