"""Week 7's metrics, each written out once: ROUGE-L (longest common subsequence), a bootstrap confidence interval,
n-gram contamination, a model as pairwise judge, and training against a wall-clock budget (the efficiency challenge).

The notebook shows each one first and checks it against its reference (``rouge-score``, the model's own loss); the
later sections call these functions.
"""

from __future__ import annotations

import math
import re
import time

import torch
from transformers import PreTrainedTokenizerBase, TrainerCallback

# ------------------------------------------------------------------------------------------------------ ROUGE-L


def rouge_tokens(text: str) -> list[str]:
    """The words ROUGE compares, tokenized as ``rouge-score`` does: lower-case, runs of [a-z0-9], no stemming."""
    return re.sub(r"[^a-z0-9]+", " ", text.lower()).split()


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of a and b (dynamic programming, one row at a time)."""
    previous = [0] * (len(b) + 1)
    for x in a:
        row = [0]
        for j, y in enumerate(b):
            row.append(previous[j] + 1 if x == y else max(previous[j + 1], row[j]))
        previous = row
    return previous[-1]


def rouge_l(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-L of prediction against reference: LCS over words, as precision, recall and their harmonic mean."""
    pred, ref = rouge_tokens(prediction), rouge_tokens(reference)
    if not pred or not ref:
        return {"precision": 0.0, "recall": 0.0, "fmeasure": 0.0}
    lcs = lcs_length(pred, ref)
    precision, recall = lcs / len(pred), lcs / len(ref)
    f = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return {"precision": precision, "recall": recall, "fmeasure": f}


def mean_rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F-measure of predictions against their references."""
    if len(predictions) != len(references):
        raise ValueError(f"expected as many predictions as references, found {len(predictions)} and {len(references)}")
    if not references:
        return math.nan
    return sum(rouge_l(p, r)["fmeasure"] for p, r in zip(predictions, references)) / len(references)


# ------------------------------------------------------------------------------------------- win rate with CI


def pairwise_outcomes(scores_a: list[float], scores_b: list[float]) -> list[float]:
    """Per prompt, 1 if A scores higher, 0 if lower, 0.5 for a tie: their mean is A's win rate over B."""
    if len(scores_a) != len(scores_b):
        raise ValueError(f"expected one score of each model per prompt, found {len(scores_a)} and {len(scores_b)}")
    return [1.0 if a > b else 0.0 if a < b else 0.5 for a, b in zip(scores_a, scores_b)]


def bootstrap_ci(values: list[float], n_boot: int = 2000, level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of values: resample with replacement n_boot times, take quantiles."""
    if len(values) < 2:
        raise ValueError(f"a bootstrap needs at least 2 values, found {len(values)}")
    if not 0 < level < 1:
        raise ValueError(f"level must be between 0 and 1, found {level}")
    x = torch.tensor(values, dtype=torch.float64)
    generator = torch.Generator().manual_seed(seed)
    idx = torch.randint(len(x), (n_boot, len(x)), generator=generator)  # (n_boot, n): one resample per row
    means = x[idx].mean(dim=1)
    tail = (1 - level) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=torch.float64)).tolist()
    return low, high


# ------------------------------------------------------------------------------------------------ contamination


def ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    """The word n-grams of text (ROUGE's tokens); a text of fewer than n words is one n-gram of all its words."""
    words = rouge_tokens(text)
    n = min(n, len(words))
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)} if words else set()


def ngram_overlap(texts: list[str], train_texts: list[str], n: int = 8) -> list[float]:
    """Per text, the share of its word n-grams that appear anywhere in train_texts (1.0: every one of them).

    A text shorter than n words counts as one gram, looked up among the training texts' grams of its own length.
    """
    sizes = {min(n, len(rouge_tokens(t))) for t in texts} - {0}
    index = {k: set() for k in sizes}
    for text in train_texts:
        words = rouge_tokens(text)
        for k in sizes:
            index[k].update(tuple(words[i : i + k]) for i in range(len(words) - k + 1))
    overlaps = []
    for text in texts:
        grams = ngrams(text, n)
        k = len(next(iter(grams))) if grams else 0
        overlaps.append(sum(g in index[k] for g in grams) / len(grams) if grams else 0.0)
    return overlaps


def contaminated(texts: list[str], train_texts: list[str], n: int = 8, threshold: float = 0.8) -> list[bool]:
    """Per text, whether at least threshold of its word n-grams appear in train_texts: a coverage rule like Llama 2's
    (which counts tokens covered by shared n-grams and flags 80% or more); GPT-3 flagged any one shared 13-gram."""
    if not 0 < threshold <= 1:
        raise ValueError(f"threshold must be in (0, 1], found {threshold}")
    return [overlap >= threshold for overlap in ngram_overlap(texts, train_texts, n)]


# ---------------------------------------------------------------------------------------------- model as judge

JUDGE_TEMPLATE = (
    "Which answer to the question is better: correct, polite and short?\n"
    "Question: {question}\nAnswer A: {a}\nAnswer B: {b}\nReply with A or B."
)


@torch.no_grad()
def judge_margins(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    questions: list[str],
    answers_a: list[str],
    answers_b: list[str],
    chat: bool = True,
    batch_size: int = 32,
) -> list[float]:
    """Per pair, log p("A") - log p("B") for the judge's reply after JUDGE_TEMPLATE (rendered with the chat template
    if chat): positive means it prefers answer A. No generation: the two replies are scored, so a verdict is always one
    of the two. The replies are tokenized as the judge would write them; where they share a first token (a byte-level
    tokenizer may write the space the chat template puts before a reply as its own token), that token is appended to
    every prompt and the verdict read at the next position. Prompts go through the model in left-padded batches."""
    from course_utils.ppo import position_ids

    if not len(questions) == len(answers_a) == len(answers_b):
        raise ValueError(f"expected equal lengths, found {len(questions)}, {len(answers_a)} and {len(answers_b)}")
    prompts = [JUDGE_TEMPLATE.format(question=q, a=a, b=b) for q, a, b in zip(questions, answers_a, answers_b)]
    if chat:
        prompts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], add_generation_prompt=True,
                                                 tokenize=False) for p in prompts]  # fmt: skip
    reply_a, reply_b = (_reply_ids(tokenizer, c, chat) for c in ("A", "B"))
    shared = next(k for k, (x, y) in enumerate(zip(reply_a, reply_b)) if x != y)  # tokens both replies start with
    token_a, token_b = reply_a[shared], reply_b[shared]
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    margins: list[float] = []
    for i in range(0, len(prompts), batch_size):
        rows = [
            tokenizer(p, add_special_tokens=False)["input_ids"] + reply_a[:shared] for p in prompts[i : i + batch_size]
        ]
        width = max(len(r) for r in rows)
        ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows], device=device)  # left-padded: ends line up
        mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows], device=device)
        logits = model(input_ids=ids, attention_mask=mask, position_ids=position_ids(mask)).logits[:, -1].float()
        logprobs = logits.log_softmax(-1)  # (B, V)
        margins += (logprobs[:, token_a] - logprobs[:, token_b]).tolist()
    return margins


def _reply_ids(tokenizer: PreTrainedTokenizerBase, reply: str, chat: bool) -> list[int]:
    """The tokens of reply as the model would write it: after the chat template's cue for the assistant (which may
    put a space before the reply), or as plain text."""
    if not chat:
        return tokenizer(reply, add_special_tokens=False)["input_ids"]
    from course_utils.sft import chat_prompts

    return _answer_tokens(tokenizer, "?", chat_prompts(tokenizer, ["?"])[0], reply)[1]


# ------------------------------------------------------------------------------------------ efficiency challenge


class TimeBudget(TrainerCallback):
    """Stops a transformers Trainer once time_budget_s seconds of training have passed (checked after each step).

    clock "wall" counts wall-clock seconds (the NeurIPS challenge's rule, on a dedicated GPU); "cpu" counts the CPU
    seconds this process used, all its threads together, which other programs on a shared machine do not eat (on 2
    idle cores, 60 CPU seconds take about 30 s).
    """

    def __init__(self, time_budget_s: float, clock: str = "wall"):
        if time_budget_s <= 0:
            raise ValueError(f"time_budget_s must be positive, found {time_budget_s}")
        if clock not in ("wall", "cpu"):
            raise ValueError(f"clock must be 'wall' or 'cpu', found {clock!r}")
        self.time_budget_s, self.steps = time_budget_s, 0
        self.clock = time.perf_counter if clock == "wall" else time.process_time
        self.started = self.clock()

    def on_train_begin(self, args, state, control, **kwargs):
        self.started = self.clock()

    def on_step_end(self, args, state, control, **kwargs):
        self.steps = state.global_step
        if self.clock() - self.started >= self.time_budget_s:
            control.should_training_stop = True
        return control

    @property
    def elapsed_s(self) -> float:
        """Seconds on this budget's clock since training began."""
        return self.clock() - self.started


def train_within_budget(
    model, tokenizer, rows: list[dict], time_budget_s: float, recipe=None, clock: str = "wall", **overrides
):
    """SFT of model in place on instruction rows by recipe (default: week 2's), stopped after time_budget_s seconds
    on clock ("wall" or "cpu", see TimeBudget).

    overrides go to ``sft_config`` (e.g. learning_rate=1e-3, max_steps=60). Returns (trainer, the TimeBudget callback:
    its ``steps`` and ``elapsed_s`` say how far training got).
    """
    import tempfile

    from course_utils.sft import SFT_RECIPE, sft_config, sft_dataset
    from trl import SFTTrainer

    budget = TimeBudget(time_budget_s, clock)
    with tempfile.TemporaryDirectory() as tmp:
        config = sft_config(tmp, recipe or SFT_RECIPE, **overrides)
        trainer = SFTTrainer(model=model, args=config, train_dataset=sft_dataset(rows), processing_class=tokenizer,
                             callbacks=[budget])  # fmt: skip
        trainer.train()
    model.eval()
    return trainer, budget


# -------------------------------------------------------------------------------------------- the course's models


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's weights as held in memory (parameters and buffers; 8- and 4-bit weights as stored)."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


# Each checkpoint's starting point: what it was trained (or quantized) from. Its change is read against that row.
STARTING_POINTS = {
    "continued-pretrained": "base",
    "SFT": "base",
    "chatty SFT": "SFT",
    "PPO": "chatty SFT",
    "RLOO": "chatty SFT",
    "DPO": "chatty SFT",
    "LoRA": "SFT",
    "QLoRA": "nf4",
    "int8": "SFT",
    "nf4": "SFT",
}


def course_checkpoints() -> dict:
    """Every checkpoint of the course in the order it was made: name -> a function returning (model, tokenizer).

    Each loader takes its checkpoint from the cache and builds it there first if it is missing (never by running a
    notebook). "chatty SFT" is week 3's start (week 2's SFT model tuned on the preference data's correct answers),
    from which PPO, RLOO and DPO were trained; int8 and nf4 are week 2's SFT model loaded through bitsandbytes
    (week 6). STARTING_POINTS names each one's start.
    """
    from course_utils.adapters import load_tiny_lora, load_tiny_qlora
    from course_utils.checkpoints import load_tiny_base, load_tiny_cpt
    from course_utils.dpo import load_tiny_dpo
    from course_utils.models import load_tokenizer
    from course_utils.ppo import load_tiny_ppo, load_tiny_rloo
    from course_utils.quantize import load_quantized
    from course_utils.rlhf import load_policy, tiny_chatty_sft_dir
    from course_utils.sft import load_tiny_sft, tiny_sft_dir

    def quantized(form: str):
        return lambda: (load_quantized(tiny_sft_dir(), form)[0], load_tokenizer(tiny_sft_dir()))

    return {
        "base": load_tiny_base,
        "continued-pretrained": load_tiny_cpt,
        "SFT": load_tiny_sft,
        "chatty SFT": lambda: load_policy(tiny_chatty_sft_dir()),
        "PPO": load_tiny_ppo,
        "RLOO": load_tiny_rloo,
        "DPO": load_tiny_dpo,
        "LoRA": load_tiny_lora,
        "QLoRA": load_tiny_qlora,
        "int8": quantized("int8"),
        "nf4": quantized("nf4"),
    }


@torch.no_grad()
def answer_token_nlls(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    batch_size: int = 32,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(token ids, negative log-probabilities), one of each per reference-answer token, every answer after its prompt
    rendered by the chat template, up to and including the end of turn. Both 1-D, on the CPU."""
    from course_utils.sft import chat_prompts

    if len(prompts) != len(answers) or not prompts:
        raise ValueError(f"expected one answer per prompt, found {len(answers)} for {len(prompts)} prompts")
    device = next(model.parameters()).device
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rendered = chat_prompts(tokenizer, prompts)
    ids_out, nlls = [], []
    for i in range(0, len(prompts), batch_size):
        pairs = [_answer_tokens(tokenizer, p, r, a) for p, r, a in
                 zip(prompts[i : i + batch_size], rendered[i : i + batch_size], answers[i : i + batch_size])]  # fmt: skip
        width = max(len(p) + len(a) for p, a in pairs)
        ids = torch.full((len(pairs), width), pad)
        labels = torch.full_like(ids, -100)  # -100: not an answer token
        mask = torch.zeros_like(ids)
        for j, (p, a) in enumerate(pairs):
            ids[j, : len(p) + len(a)] = torch.tensor(p + a)
            labels[j, len(p) : len(p) + len(a)] = torch.tensor(a)
            mask[j, : len(p) + len(a)] = 1
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits.float().cpu()  # (B, T, V)
        targets = labels[:, 1:]  # the prediction at t is for token t+1
        logprobs = logits[:, :-1].log_softmax(-1).gather(-1, targets.clamp(min=0)[..., None]).squeeze(-1)
        keep = targets != -100
        ids_out.append(targets[keep])
        nlls.append(-logprobs[keep])
    return torch.cat(ids_out), torch.cat(nlls)


def answer_perplexity(
    model: torch.nn.Module,
    tokenizer: PreTrainedTokenizerBase,
    prompts: list[str],
    answers: list[str],
    batch_size: int = 32,
) -> float:
    """exp(mean negative log-probability of the reference answers' tokens), each answer after its prompt rendered by
    the chat template: the perplexity of the answers an assistant should give, not of the questions."""
    _, nlls = answer_token_nlls(model, tokenizer, prompts, answers, batch_size)
    return math.exp(nlls.double().mean().item())


def _answer_tokens(tokenizer, prompt: str, rendered: str, answer: str) -> tuple[list[int], list[int]]:
    """(prompt ids, answer ids) as the chat template renders the whole conversation, the answer up to and including
    the end of turn (the template may put a space before it)."""
    from course_utils.sft import end_of_turn_ids

    messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}]
    full = tokenizer(tokenizer.apply_chat_template(messages, tokenize=False), add_special_tokens=False)["input_ids"]
    head = tokenizer(rendered, add_special_tokens=False)["input_ids"]
    if full[: len(head)] != head:
        raise ValueError("the chat template renders the prompt differently alone and in a conversation")
    rest, ends = full[len(head) :], set(end_of_turn_ids(tokenizer))
    cut = next((k + 1 for k, token in enumerate(rest) if token in ends), len(rest))
    return head, rest[:cut]
