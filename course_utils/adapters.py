"""Parameter-efficient fine-tuning (week 5): new skills for the tiny SFT model, and the cached LoRA adapters.

Week 2's SFT model never trained two task types of the evaluation set (its ``heldout_task`` split): subtraction and
favourite colours. Week 5 teaches them, with full fine-tuning and with adapters, and keeps the adapters.

* ``NEW_TASKS`` / ``new_task_rows()``: training rows for those task types, generated from the tiny world; none shares
  a prompt (subtraction) or a person (colours) with ``instruct_eval.jsonl``. ``new_task_eval_rows()`` scores them.
* ``LoraRecipe`` / ``lora_config()`` / ``adapter_sft_config()``: peft's ``LoraConfig`` and TRL's ``SFTConfig`` for a
  recipe (week 5 shows both unwrapped).
* ``train_adapter()``: TRL's ``SFTTrainer`` with a peft config (or none: full fine-tuning) for the recipe's steps.
* ``StepTimer`` / ``seconds_per_step()``: the time of an optimizer step, without the trainer's start-up.
* ``tiny_lora_dir()`` / ``load_tiny_lora()``: the tiny SFT model's LoRA adapter for a recipe, cached (one writer):
  ``LORA_RECIPE`` for both task types, ``TASK_ADAPTER_RECIPES`` one per task type (weeks 6 and 7 load them).
* ``tiny_qlora_dir()`` / ``load_tiny_qlora()``: the same LoRA recipe trained on the tiny SFT model loaded in 4-bit
  NF4 (QLoRA, week 6), cached for week 7.
* ``files_bytes()``: what a saved checkpoint or adapter costs on disk.
"""

from __future__ import annotations

import random
import statistics
import tempfile
import time
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from course_utils.checkpoints import cache_key, cached_checkpoint, trainer_history
from course_utils.data import people, read_jsonl
from course_utils.env import check_precision
from course_utils.models import load_tokenizer
from course_utils.quantize import load_quantized
from course_utils.sft import SFTRecipe, load_tiny_sft, sft_config, sft_dataset, tiny_sft_dir, tiny_sft_key
from course_utils.training import without_log_lines
from peft import LoraConfig, PeftConfig, PeftModel
from transformers import PreTrainedTokenizerBase, TrainerCallback, set_seed
from trl import SFTConfig, SFTTrainer

# peft 0.21 asks transformers 5 a deprecated question when it wraps a model, and warns (harmlessly) on every wrap.
warnings.filterwarnings("ignore", message="`is_gradient_checkpointing` is deprecated", category=FutureWarning)
# Prompt-learning methods drop position_ids; our batches are padded (not packed), so their positions are the usual ones.
warnings.filterwarnings("ignore", message="Position ids are not supported for parameter efficient tuning")

NEW_TASKS = ("subtract", "fact_colour")  # the task types week 2's SFT model never trained
COLOUR_PHRASINGS = (  # the first is the evaluation's phrasing; training asks it about other people
    "What is the favourite colour of {p}?",
    "Which colour does {p} like best?",
    "Name the favourite colour of {p}.",
)
ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")  # the attention projections of a Llama layer


def new_task_eval_rows(tasks: tuple[str, ...] = NEW_TASKS) -> list[dict]:
    """The evaluation rows of the task types (30 each, from instruct_eval.jsonl's heldout_task split)."""
    unknown = sorted(set(tasks) - set(NEW_TASKS))
    if unknown:
        raise ValueError(f"tasks must be among {NEW_TASKS}, found {unknown}")
    return [r for r in read_jsonl("instruct_eval.jsonl") if r["task"] in tasks]


def new_task_rows(tasks: tuple[str, ...] = NEW_TASKS) -> list[dict]:
    """Training rows for the new task types, disjoint from the evaluation set, in a fixed order.

    subtract: every "What is a minus b?" with 20 >= a >= b >= 0 that the evaluation does not ask (201 rows).
    fact_colour: the 20 people of the tiny world whose colour the evaluation does not ask, in three phrasings (60).
    """
    new_task_eval_rows(tasks)  # checks the task names
    evals = new_task_eval_rows(NEW_TASKS)
    asked = {r["prompt"] for r in evals}
    rows = []
    if "subtract" in tasks:
        for a in range(21):
            for b in range(a + 1):
                prompt = f"What is {a} minus {b}?"
                if prompt not in asked:
                    rows.append({"task": "subtract", "prompt": prompt, "response": str(a - b)})
    if "fact_colour" in tasks:
        asked_about = {r["prompt"] for r in evals if r["task"] == "fact_colour"}
        for person in people(("core", "probe")):
            if COLOUR_PHRASINGS[0].format(p=person["name"]) in asked_about:
                continue  # a person the evaluation asks about: never in training
            for phrasing in COLOUR_PHRASINGS:
                rows.append({"task": "fact_colour", "prompt": phrasing.format(p=person["name"]),
                             "response": person["colour"]})  # fmt: skip
    random.Random(0).shuffle(rows)
    return rows


@dataclass(frozen=True)
class LoraRecipe:
    """The values that define a LoRA run on the tiny SFT model; everything else is a peft or TRL default."""

    r: int = 8  # rank of the update B @ A
    alpha: int = 16  # the update is scaled by alpha / r
    targets: tuple[str, ...] = ATTENTION  # which nn.Linear layers get an adapter
    tasks: tuple[str, ...] = NEW_TASKS  # what it learns: new_task_rows(tasks)
    steps: int = 40  # optimizer steps (a few passes over the rows)
    lr: float = 2e-3  # peak learning rate; the adapters start at zero and need a higher rate than full fine-tuning
    batch_size: int = 16
    warmup_steps: int = 4
    seed: int = 0  # adapter initialisation and data order
    precision: str = "fp32"

    def __post_init__(self):
        if self.r < 1 or self.steps < 1 or self.lr <= 0:
            raise ValueError(f"r and steps must be >= 1 and lr > 0, found {self.r}, {self.steps}, {self.lr}")
        new_task_eval_rows(self.tasks)
        check_precision(self.precision)


LORA_RECIPE = LoraRecipe()  # the cached adapter: both new task types, rank 8
TASK_ADAPTER_RECIPES = {task: replace(LORA_RECIPE, tasks=(task,)) for task in NEW_TASKS}  # one adapter per task
FULL_FT_LR = 5e-4  # full fine-tuning on the same rows and steps: week 2's SFT rate (a higher one forgets more)
SMALL_LORA_RECIPE = LoraRecipe(steps=60, lr=5e-4)  # SmolLM2-135M; precision per run


def lora_config(recipe: LoraRecipe = LORA_RECIPE) -> LoraConfig:
    """peft's LoraConfig for recipe: rank, scaling, target layers; no dropout, no bias."""
    return LoraConfig(
        r=recipe.r,
        lora_alpha=recipe.alpha,
        target_modules=list(recipe.targets),
        lora_dropout=0.0,
        bias="none",
        task_type="CAUSAL_LM",
    )


def adapter_sft_config(output_dir: str | Path, recipe: LoraRecipe = LORA_RECIPE, **overrides) -> SFTConfig:
    """TRL's SFTConfig for recipe: week 2's SFT settings (assistant-only loss, no packing), recipe.steps steps."""
    sft = SFTRecipe(lr=recipe.lr, batch_size=recipe.batch_size, warmup_steps=recipe.warmup_steps,
                    seed=recipe.seed, precision=recipe.precision)  # fmt: skip
    return sft_config(output_dir, sft, max_steps=recipe.steps, **overrides)


class StepTimer(TrainerCallback):
    """Notes when training starts and when each optimizer step ends (train_adapter adds one to every trainer).

    A short run's wall time is mostly the trainer's start-up (datasets, tokenising, the first steps); the time
    between step ends, once the first few are over, is what a longer run of the same steps would cost per step.
    """

    def __init__(self):
        self.ends: list[float] = []

    def on_train_begin(self, args, state, control, **kwargs):
        self.ends = [time.perf_counter()]

    def on_step_end(self, args, state, control, **kwargs):
        self.ends.append(time.perf_counter())

    def seconds_per_step(self, skip: int = 5) -> float:
        """Median seconds between step ends, leaving out the first skip steps (allocator and caches warming up)."""
        steps = [b - a for a, b in zip(self.ends, self.ends[1:])][skip:]
        if not steps:
            raise ValueError(f"expected more than {skip} timed steps, found {len(self.ends) - 1}")
        return statistics.median(steps)


def seconds_per_step(trainer, skip: int = 5) -> float:
    """Median seconds per optimizer step of trainer's finished run after its first skip steps (see StepTimer)."""
    timers = [c for c in trainer.callback_handler.callbacks if isinstance(c, StepTimer)]
    if not timers:
        raise ValueError("this trainer ran without a StepTimer: pass callbacks=[StepTimer()] (train_adapter adds one)")
    return timers[0].seconds_per_step(skip)


def train_adapter(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    rows: list[dict],
    recipe: LoraRecipe = LORA_RECIPE,
    peft_config: PeftConfig | None = None,
    quiet: bool = False,
    **overrides,
) -> SFTTrainer:
    """SFTTrainer on rows by recipe; with peft_config only the adapter trains, else every weight (full fine-tuning).

    overrides go to adapter_sft_config (e.g. learning_rate=FULL_FT_LR). quiet: no progress bar and no log lines
    (a cache build, or a loop that prints its own line per run). The trained model is ``trainer.model``
    (a PeftModel wrapping model when peft_config is given), left in eval mode; ``seconds_per_step(trainer)`` times
    its steps.
    """
    set_seed(recipe.seed)  # the adapter's random start must not depend on what ran before (peft draws it here)
    if quiet:
        overrides["disable_tqdm"] = True  # no bar, and without_log_lines drops the log lines that would replace it
    with tempfile.TemporaryDirectory() as tmp:
        trainer = SFTTrainer(
            model=model,
            args=adapter_sft_config(tmp, recipe, **overrides),
            train_dataset=sft_dataset(rows),
            processing_class=tokenizer,
            peft_config=peft_config,
            callbacks=[StepTimer()],
        )
        without_log_lines(trainer).train()
    trainer.model.eval()
    return trainer


def tiny_lora_key(recipe: LoraRecipe = LORA_RECIPE) -> str:
    """Cache key: the recipe, the SFT model's key, and the training rows themselves (they are generated)."""
    return cache_key(
        "tiny-lora",
        asdict(recipe),
        tiny_sft_key(),
        new_task_rows(recipe.tasks),
        data_files=("world.json", "instruct_eval.jsonl"),
    )


def tiny_lora_dir(recipe: LoraRecipe = LORA_RECIPE, trained: tuple | None = None) -> Path:
    """The cached LoRA adapter on the tiny SFT model, trained by recipe if missing (seconds on 2 CPU cores).

    The entry holds peft's adapter files (adapter_config.json, adapter_model.safetensors), the tokenizer and the
    loss history, not a copy of the SFT model. trained: (peft model, tokenizer, trainer) that week 5 already trained
    by exactly this recipe; saved instead of training again. The entry is written here and nowhere else.
    """

    label = f"the tiny LoRA adapter ({' + '.join(recipe.tasks)}, r={recipe.r})"
    return _cached_adapter(tiny_lora_key(recipe), load_tiny_sft, recipe, trained, label)


def _cached_adapter(key: str, load_base, recipe: LoraRecipe, trained: tuple | None, label: str) -> Path:
    """The cache entry key: recipe's LoRA adapter trained on load_base() (unless trained is given), saved once."""

    def train() -> tuple:
        model, tokenizer = load_base()
        trainer = train_adapter(model, tokenizer, new_task_rows(recipe.tasks), recipe, lora_config(recipe), quiet=True)
        return trainer.model, tokenizer, trainer_history(trainer)

    return cached_checkpoint(key, train, trained, label)


def load_tiny_lora(recipe: LoraRecipe = LORA_RECIPE, adapter_name: str = "default"):
    """(PeftModel: the tiny SFT model with the cached adapter, tokenizer), in eval mode."""
    path = tiny_lora_dir(recipe)
    base, _ = load_tiny_sft()
    return PeftModel.from_pretrained(base, path, adapter_name=adapter_name).eval(), load_tokenizer(path)


QLORA_BASE = "nf4"  # the base model's format under QLoRA: bitsandbytes NF4, blocks of 64, computing in fp32


def tiny_qlora_key(recipe: LoraRecipe = LORA_RECIPE) -> str:
    """Cache key: the LoRA key's parts plus the 4-bit base format."""
    return cache_key("tiny-qlora", QLORA_BASE, tiny_lora_key(recipe), data_files=())


def load_tiny_nf4_sft():
    """(the tiny SFT model in bitsandbytes NF4, tokenizer): the base QLoRA trains on."""
    path = tiny_sft_dir()
    model, _ = load_quantized(path, QLORA_BASE)
    return model, load_tokenizer(path)


def tiny_qlora_dir(recipe: LoraRecipe = LORA_RECIPE, trained: tuple | None = None) -> Path:
    """The cached QLoRA adapter: recipe's LoRA trained on the NF4 tiny SFT model (seconds on 2 CPU cores).

    Holds the adapter files, the tokenizer and the loss history. trained: (peft model, tokenizer, trainer) that week 6
    already trained by exactly this recipe on load_tiny_nf4_sft(); saved instead of training again.
    """

    label = f"the tiny QLoRA adapter ({' + '.join(recipe.tasks)}, r={recipe.r}, {QLORA_BASE} base)"
    return _cached_adapter(tiny_qlora_key(recipe), load_tiny_nf4_sft, recipe, trained, label)


def load_tiny_qlora(recipe: LoraRecipe = LORA_RECIPE):
    """(PeftModel: the NF4 tiny SFT model with the cached QLoRA adapter, tokenizer), in eval mode."""
    path = tiny_qlora_dir(recipe)
    base, _ = load_tiny_nf4_sft()
    return PeftModel.from_pretrained(base, path).eval(), load_tokenizer(path)


def files_bytes(directory: str | Path, pattern: str = "*.safetensors") -> int:
    """Bytes on disk of the files in directory that match pattern (the weights of a checkpoint or an adapter)."""
    return sum(p.stat().st_size for p in Path(directory).glob(pattern))
