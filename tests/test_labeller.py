"""The scripted labeller: the rule that made the preference data judges new text the same way."""

import pytest
from course_utils.data import read_jsonl
from course_utils.labeller import compare, judge, mean_score, rank, score, win_rate


@pytest.mark.parametrize("name", ["preference_train.jsonl", "preference_test.jsonl"])
def test_reproduces_every_stored_score_and_ranking(name):
    for row in read_jsonl(name):
        assert [score(r, row["answer"]) for r in row["responses"]] == row["scores"], row
        assert rank(row["responses"], row["answer"]) == row["ranking"], row


def test_criteria_on_new_text():
    assert judge("Sure! 27", "27") == {"correct": True, "polite": True, "concise": True}
    assert not judge("Happy to help: sad", "happy")["correct"]  # a set phrase is not the answer
    assert not judge("127", "27")["correct"]  # whole words only
    assert not judge("Ugh. 27", "27")["polite"]
    assert judge("I thought about it: 27", "27")["polite"]  # "ugh" inside "thought" is not rude
    assert not judge("27 " + "and more words " * 5, "27")["concise"]
    assert score("Whatever. 13", "27") == 1 and score("Of course. 27", "27") == 7


def test_empty_reference_is_refused():
    with pytest.raises(ValueError, match="reference answer must contain a word"):
        score("anything", "  ?")


def test_sets_of_answers():
    answers = ["27", "sad"]
    assert mean_score(["Of course. 27", "Whatever. happy"], answers) == (7 + 1) / 2
    assert compare(["Sure! 27", "sad"], ["27", "Ugh. sad"], answers) == (1, 0, 1)
    assert win_rate(["Sure! 27", "sad"], ["27", "Ugh. sad"], answers) == 1.0  # the tie is left out
    assert win_rate(["27"], ["27"], ["27"]) == 0.0  # all ties: no evidence either way
    with pytest.raises(ValueError, match="equal lengths"):
        compare(["27"], [], answers)
