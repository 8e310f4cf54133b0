"""The scripted labeller: the rule that ranked the responses of ``preference_*.jsonl``, as a function.

Human labellers compare responses; ours follows a fixed rule so that every week can judge *new* generations
exactly the way the preference data were judged (week 3 scores PPO samples with it, week 4 DPO samples, week 7
uses it as a judge to compare with the reward model). A response earns

* 4 points if it is **correct**: the reference answer appears in it as whole words (after a polite opener),
* 2 points if it is **polite**: none of the rude phrases below,
* 1 point if it is **concise**: at most ``MAX_CONCISE_WORDS`` words,

so correctness outweighs tone, and tone outweighs length. ``mean_score`` and ``compare`` judge whole sets of answers
(one model's, or two models' head to head). ``tools/tinyworld.py`` scores the preference data with ``score``; a
test checks that it reproduces every stored score.
"""

from __future__ import annotations

import re

from course_utils.metrics import normalize_answer

RUDE_PHRASES = ("ugh", "obviously", "stupid", "whatever", "figure it out")
POLITE_OPENERS = ("sure", "happy to help", "of course")  # set phrases, not answers ("happy to help" is not "happy")
MAX_CONCISE_WORDS = 12


def _has_phrase(text: str, phrase: str) -> bool:
    """Whether normalized text holds phrase as whole words ("ugh" is not in "thought")."""
    return re.search(rf"(^| ){re.escape(phrase)}( |$)", text) is not None


def judge(response: str, answer: str) -> dict[str, bool]:
    """The three criteria for one response to a question whose reference answer is ``answer``."""
    text, reference = normalize_answer(response), normalize_answer(answer)
    if not reference:
        raise ValueError(f"the reference answer must contain a word, found {answer!r}")
    content = text
    for opener in POLITE_OPENERS:
        content = re.sub(rf"^{re.escape(opener)}( |$)", "", content)
    return {
        "correct": _has_phrase(content, reference),
        "polite": not any(_has_phrase(text, phrase) for phrase in RUDE_PHRASES),
        "concise": len(text.split()) <= MAX_CONCISE_WORDS,
    }


def score(response: str, answer: str) -> int:
    """4 x correct + 2 x polite + 1 x concise: from 0 (wrong, rude, rambling) to 7."""
    verdict = judge(response, answer)
    return 4 * verdict["correct"] + 2 * verdict["polite"] + verdict["concise"]


def rank(responses: list[str], answer: str) -> list[int]:
    """Indices of responses, best first (ties keep their order), as the labeller ranks them."""
    scores = [score(r, answer) for r in responses]
    return sorted(range(len(responses)), key=lambda i: -scores[i])


def mean_score(responses: list[str], answers: list[str]) -> float:
    """The labeller's mean score (0 to 7) of responses, each against its reference answer."""
    if len(responses) != len(answers):
        raise ValueError(f"expected one response per answer, found {len(responses)} for {len(answers)} answers")
    return sum(score(r, a) for r, a in zip(responses, answers)) / len(answers)


def compare(responses_a: list[str], responses_b: list[str], answers: list[str]) -> tuple[int, int, int]:
    """(wins, losses, ties) of responses_a against responses_b, prompt by prompt, by the labeller's score."""
    if not len(responses_a) == len(responses_b) == len(answers):
        raise ValueError(f"expected equal lengths, found {len(responses_a)}, {len(responses_b)} and {len(answers)}")
    pairs = [(score(a, ans), score(b, ans)) for a, b, ans in zip(responses_a, responses_b, answers)]
    return sum(x > y for x, y in pairs), sum(x < y for x, y in pairs), sum(x == y for x, y in pairs)


def win_rate(responses_a: list[str], responses_b: list[str], answers: list[str]) -> float:
    """Share of prompts where the labeller scores responses_a above responses_b, among those it does not tie."""
    wins, losses, _ = compare(responses_a, responses_b, answers)
    return wins / max(wins + losses, 1)
