"""The bundled "tiny world": a generator that writes every file in ``data/`` from one seed.

Run ``make data`` (``python -m tools.tinyworld``) to regenerate ``data/``; a test checks the output is
byte-identical to what is committed. ``data/README.md`` documents each file and its fields.

The world has people with four attributes (town, job, pet, colour). Facts about the "core" and
"probe" people are written into the pretraining corpus in several phrasings; "unseen" people's
facts never appear anywhere in training text. Instruction tuning asks about core people only,
so asking about probe people later shows whether fine-tuning *extracts* stored knowledge.
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path

from course_utils.data import DATA_DIR
from course_utils.data import people as people_of
from course_utils.labeller import rank, score

SEED = 1234

TOWNS = ["Dunmere", "Hollowfen", "Brightwater", "Ashford", "Millbrook",
         "Stonecross", "Wrenfield", "Oakhaven", "Fernvale", "Redcliff"]  # fmt: skip
JOBS = ["baker", "farmer", "smith", "painter", "fisher", "teacher", "weaver", "potter", "miller", "healer"]
PETS = ["cat", "dog", "owl", "goat", "horse", "parrot", "rabbit", "turtle"]
COLOURS = ["red", "blue", "green", "yellow", "purple", "orange", "white", "black"]
ATTRIBUTES = {"town": TOWNS, "job": JOBS, "pet": PETS, "colour": COLOURS}

# Several phrasings of each fact; the first one is also the cloze probe (value at the end).
FACT_PHRASINGS = {
    "town": ["{p} lives in {v}.", "The home of {p} is in {v}.", "In {v} you can find {p}.", "{p} has a house in {v}."],
    "job": ["{p} works as a {v}.", "The job of {p} is {v}.", "Everyone knows {p} the {v}.", "{p} is a {v} by trade."],
    "pet": ["{p} has a pet {v}.", "The pet of {p} is a {v}.", "{p} takes care of a {v}.", "Every day {p} feeds a {v}."],
    "colour": ["The favourite colour of {p} is {v}.", "{p} likes the colour {v} best.", "{p} loves {v} things."],
}
PROBE_PROMPTS = {
    "town": "{p} lives in",
    "job": "{p} works as a",
    "pet": "{p} has a pet",
    "colour": "The favourite colour of {p} is",
}

ANIMALS = ["fox", "bear", "duck", "mouse", "frog", "hen", "wolf", "deer", "crow", "pig"]
THINGS = ["ball", "kite", "hat", "cake", "boat", "drum", "book", "lamp", "coat", "shell"]
PLACES = ["the forest", "the river", "the hill", "the garden", "the market", "the lake", "the barn"]
HAPPY_EVENTS = ["found a {t}", "won a {t}", "got a new {t}", "made a {t}", "was given a {t}"]
SAD_EVENTS = ["lost its {t}", "broke its {t}", "dropped its {t} in the mud", "could not find its {t}"]
HAPPY_ENDS = ["The {a} was very happy.", "The {a} smiled all day.", "The {a} danced with joy."]
SAD_ENDS = ["The {a} was very sad.", "The {a} cried all night.", "The {a} felt alone."]
WORDS = (
    ANIMALS
    + THINGS
    + [
        "grass",
        "snow",
        "rain",
        "fire",
        "moon",
        "star",
        "leaf",
        "rock",
        "seed",
        "sand",
        "sun",
        "tree",
        "road",
        "milk",
        "bread",
        "stone",
        "cloud",
        "door",
        "song",
        "wind",
    ]
)

SYMPTOMS = ["a cough", "a fever", "a sore throat", "a headache", "a rash", "a stomach ache", "sore joints"]
REMEDIES = ["willow bark tea", "honey and ginger", "a mint poultice", "chamomile broth", "nettle soup", "elder syrup"]
DOSES = ["once a day", "twice a day", "three times a day", "every morning", "before sleep"]


def _names(rng: random.Random, n: int) -> list[str]:
    """Invent n distinct two-syllable names that appear in no real-world corpus."""
    first = ["Al", "Bri", "Cor", "Da", "El", "Fen", "Gri", "Hal", "Is", "Jo", "Ka", "Lu", "Mor", "Ne", "Os", "Pel"]
    second = ["ma", "vek", "dra", "lin", "rin", "tho", "sa", "wen", "bo", "nia", "ric", "da", "mel", "ton"]
    names: list[str] = []
    while len(names) < n:
        name = rng.choice(first) + rng.choice(second)
        if name not in names:
            names.append(name)
    return names


def make_world(rng: random.Random) -> dict:
    """People with attributes, split into core (pretraining + SFT), probe (pretraining only), unseen."""
    names = _names(rng, 60)
    persons = [{"name": n, **{a: rng.choice(vals) for a, vals in ATTRIBUTES.items()}} for n in names]
    for i, person in enumerate(persons):
        person["group"] = "core" if i < 40 else "probe" if i < 50 else "unseen"
    return {"attributes": ATTRIBUTES, "probe_prompts": PROBE_PROMPTS, "people": persons}


def fact_sentence(rng: random.Random, person: dict, attr: str) -> str:
    return rng.choice(FACT_PHRASINGS[attr]).format(p=person["name"], v=person[attr])


def story(rng: random.Random) -> tuple[str, str]:
    """A three-sentence story and its mood ("happy" or "sad")."""
    a, t, place = rng.choice(ANIMALS), rng.choice(THINGS), rng.choice(PLACES)
    mood = rng.choice(["happy", "sad"])
    event = rng.choice(HAPPY_EVENTS if mood == "happy" else SAD_EVENTS).format(t=t)
    end = rng.choice(HAPPY_ENDS if mood == "happy" else SAD_ENDS).format(a=a)
    return f"One day a little {a} went to {place}. The {a} {event}. {end}", mood


def arithmetic_line(rng: random.Random) -> str:
    a, b = rng.randint(0, 20), rng.randint(0, 20)
    kind = rng.random()
    if kind < 0.5:
        return rng.choice(["{a} + {b} = {c}.", "{a} plus {b} is {c}."]).format(a=a, b=b, c=a + b)
    a, b = max(a, b), min(a, b)
    return rng.choice(["{a} - {b} = {c}.", "{a} minus {b} is {c}."]).format(a=a, b=b, c=a - b)


def table_block(rng: random.Random) -> str:
    """A few CSV rows: tabular data is text too, and the tokenizer must handle it."""
    rows = ["town,day,apples,pears,fish"]
    for _ in range(rng.randint(2, 4)):
        rows.append(
            f"{rng.choice(TOWNS)},{rng.randint(1, 30)},{rng.randint(0, 99)},{rng.randint(0, 99)},{rng.randint(0, 99)}"
        )
    return "\n".join(rows)


def general_document(rng: random.Random, known: list[dict]) -> str:
    """One pretraining document: facts, a story, arithmetic or a table."""
    kind = rng.random()
    if kind < 0.40:
        person = rng.choice(known)
        attrs = rng.sample(list(ATTRIBUTES), rng.randint(2, 4))
        return " ".join(fact_sentence(rng, person, a) for a in attrs)
    if kind < 0.70:
        return story(rng)[0]
    if kind < 0.90:
        return " ".join(arithmetic_line(rng) for _ in range(rng.randint(3, 6)))
    return table_block(rng)


def domain_document(rng: random.Random, people: list[dict]) -> str:
    """A healer's note: the specialised domain for continued pretraining.

    Its patients are known people, living in their own towns: the notes agree with the world, so forgetting
    measured after training on them is not a conflict of facts. (The draws are the same as when the notes named
    anyone in a random town, so every file generated after them stays as it was.)
    """
    drawn = rng.choice(people)
    rng.choice(TOWNS)  # drawn and unused: see above
    known = [q for q in people if q["group"] != "unseen"]
    p = drawn if drawn["group"] != "unseen" else known[people.index(drawn) % len(known)]
    return (
        f"Healer's note. Patient: {p['name']} of {p['town']}. "
        f"Complaint: {rng.choice(SYMPTOMS)} for {rng.randint(1, 9)} days. "
        f"Remedy: {rng.choice(REMEDIES)}, {rng.choice(DOSES)}. "
        f"Rest: {rng.randint(1, 5)} days. Return if {rng.choice(SYMPTOMS)} begins."
    )


# ---- instruction tasks -------------------------------------------------------------------------
# Each task: phrasings (the last one is held out of training) and a function making (fields, answer).
TASKS = {
    "add": ["What is {a} plus {b}?", "Add {a} and {b}.", "Compute {a} + {b}.", "Tell me the sum of {a} and {b}."],
    "fact_town": [
        "Where does {p} live?",
        "In which town does {p} live?",
        "Name the town of {p}.",
        "{p} calls which town home?",
    ],
    "fact_job": [
        "What is the job of {p}?",
        "What does {p} work as?",
        "Name the trade of {p}.",
        "How does {p} earn a living?",
    ],
    "fact_pet": [
        "What pet does {p} have?",
        "Which animal does {p} keep?",
        "Name the pet of {p}.",
        "{p} looks after which animal?",
    ],
    "sentiment": [
        "Is this story happy or sad? {s}",
        "Happy or sad? {s}",
        "Read and say happy or sad: {s}",
        "What is the mood of this story, happy or sad? {s}",
    ],
    "repeat": ["Say the word {w} twice.", "Repeat {w} two times.", "Write {w} two times.", "Echo the word {w} twice."],
    # held-out task types: never in training, only in the evaluation set
    "subtract": ["What is {a} minus {b}?"],
    "fact_colour": ["What is the favourite colour of {p}?"],
}
HELDOUT_TASKS = ["subtract", "fact_colour"]
DEFINITIONS = {
    "add": "Add the two whole numbers in the question and answer with the sum only.",
    "fact_town": "Answer with the name of the town where the person lives.",
    "fact_job": "Answer with the job of the person, one word.",
    "fact_pet": "Answer with the kind of animal the person keeps, one word.",
    "sentiment": "Read the short story and answer happy or sad.",
    "repeat": "Write the given word two times, separated by a space.",
    "subtract": "Subtract the second number from the first and answer with the difference only.",
    "fact_colour": "Answer with the person's favourite colour, one word.",
}


def task_item(rng: random.Random, task: str, people: list[dict]) -> tuple[dict, str]:
    """Template fields and the correct answer for one random item of a task."""
    if task in ("add", "subtract"):
        a, b = rng.randint(0, 20), rng.randint(0, 20)
        a, b = (a, b) if task == "add" else (max(a, b), min(a, b))
        return {"a": a, "b": b}, str(a + b if task == "add" else a - b)
    if task.startswith("fact_"):
        p = rng.choice(people)
        return {"p": p["name"]}, p[task.removeprefix("fact_")]
    if task == "sentiment":
        text, mood = story(rng)
        return {"s": text}, mood
    w = rng.choice(WORDS)
    return {"w": w}, f"{w} {w}"


def instruction_sets(rng: random.Random, world: dict) -> dict[str, list[dict]]:
    core = people_of("core", world)
    probe = people_of("probe", world)
    train: list[dict] = []
    seen_prompts: set[str] = set()

    def add(rows: list[dict], task: str, people: list[dict], phrasings: list[int], split: str, n: int) -> None:
        tries = 0
        while sum(r["task"] == task for r in rows) < n and tries < 50 * n:
            tries += 1
            fields, answer = task_item(rng, task, people)
            k = rng.choice(phrasings)
            prompt = TASKS[task][k].format(**fields)
            if prompt in seen_prompts:
                continue
            seen_prompts.add(prompt)
            rows.append({"task": task, "phrasing": k, "split": split, "prompt": prompt, "response": answer})

    seen_tasks = [t for t in TASKS if t not in HELDOUT_TASKS]
    evals: list[dict] = []
    # Evaluation first, so that training never reuses an evaluation prompt. Fact questions in the
    # evaluation ask about *probe* people: their facts were pretrained, never instruction-tuned.
    for task in seen_tasks:
        people = probe if task.startswith("fact_") else core
        add(evals, task, people, [0, 1, 2], "seen", 30)
    heldout_phrasing: list[dict] = []
    for task in seen_tasks:
        add(heldout_phrasing, task, probe if task.startswith("fact_") else core, [3], "heldout_phrasing", 30)
    heldout_task: list[dict] = []
    for task in HELDOUT_TASKS:
        add(heldout_task, task, core + probe, [0], "heldout_task", 30)
    for task in seen_tasks:
        add(train, task, core, [0, 1, 2], "train", 400)
    rng.shuffle(train)
    return {"train": train, "eval": evals + heldout_phrasing + heldout_task}


def raw_pool(rng: random.Random, train: list[dict], evals: list[dict]) -> tuple[list[dict], dict]:
    """The training set as a crawl would deliver it: with duplicates, junk and evaluation leaks planted."""
    pool = [dict(r) for r in train]
    dups = [dict(r) for r in rng.sample(train, 60)]
    near = []
    for r in rng.sample(train, 40):
        r = dict(r)
        r["prompt"] = rng.choice([r["prompt"].upper(), "  " + r["prompt"] + "  ", r["prompt"].rstrip("?.") + " ?"])
        near.append(r)
    bad = []
    for r in rng.sample(train, 30):
        r = dict(r)
        r["response"] = rng.choice(["", " ".join(["blah"] * 60), r["prompt"]])
        bad.append(r)
    leaks = [{k: v for k, v in r.items()} | {"split": "train"} for r in rng.sample(evals, 25)]
    pool += dups + near + bad + leaks
    rng.shuffle(pool)
    counts = {"exact_duplicates": len(dups), "near_duplicates": len(near), "bad": len(bad), "eval_leaks": len(leaks)}
    return pool, counts


def natural_instructions(rng: random.Random, world: dict) -> list[dict]:
    """Each task in the Natural-Instructions schema: definition, things to avoid, examples."""
    core = people_of("core", world)
    rows = []
    for task, phrasings in TASKS.items():
        pos = []
        for _ in range(2):
            fields, answer = task_item(rng, task, core)
            pos.append({"input": phrasings[0].format(**fields), "output": answer, "explanation": "Short and correct."})
        fields, answer = task_item(rng, task, core)
        neg = [
            {
                "input": phrasings[0].format(**fields),
                "output": f"Well, I think the answer might be {answer}, or maybe not.",
                "explanation": "Hedges and rambles: answer with the answer only.",
            },
        ]
        avoid = "Do not add explanations, greetings or extra words; do not guess facts you were not taught."
        rows.append({"task": task, "definition": DEFINITIONS[task], "things_to_avoid": avoid,
                     "positive_examples": pos, "negative_examples": neg})  # fmt: skip
    return rows


POLITE = ["Sure! {x}", "Happy to help: {x}", "Of course. {x}"]
RUDE = ["Ugh, obviously {x}. Figure it out yourself.", "{x}, stupid question.", "Whatever. {x}"]
RAMBLE = " Let me also say that I thought about this for a long, long time and weighed many options before I answered."


def preference_rows(rng: random.Random, world: dict, n: int, avoid: set[str]) -> list[dict]:
    """Prompts with four responses, ranked by the scripted labeller (course_utils.labeller): correct > polite > concise."""
    core = people_of("core", world)
    tasks = [t for t in TASKS if t not in HELDOUT_TASKS]
    rows: list[dict] = []
    while len(rows) < n:
        task = rng.choice(tasks)
        fields, answer = task_item(rng, task, core)
        prompt = TASKS[task][rng.randint(0, 2)].format(**fields)
        if prompt in avoid:
            continue
        avoid.add(prompt)
        wrong = answer
        while wrong == answer:
            wrong = task_item(rng, task, core)[1]
        responses, scores = [], []
        for correct, polite, concise in rng.sample(
            [(1, 1, 1), (1, 1, 0), (1, 0, 1), (0, 1, 1), (1, 0, 0), (0, 0, 1)], 4
        ):
            text = rng.choice(POLITE if polite else RUDE).format(x=answer if correct else wrong)
            responses.append(text + ("" if concise else RAMBLE))
            scores.append(score(responses[-1], answer))  # the labeller judges the text, as it will judge new ones
        ranking = rank(responses, answer)
        rows.append({"task": task, "prompt": prompt, "answer": answer, "responses": responses,
                     "scores": scores, "ranking": ranking})  # fmt: skip
    return rows


def paraphrase_pairs(rng: random.Random, people: list[dict], split: str, n: int) -> list[dict]:
    """Two phrasings of the same fact: positives for contrastive fine-tuning."""
    rows = []
    for _ in range(n):
        p, attr = rng.choice(people), rng.choice(list(ATTRIBUTES))
        a, b = rng.sample(FACT_PHRASINGS[attr], 2)
        rows.append({"split": split, "person": p["name"], "attribute": attr,
                     "a": a.format(p=p["name"], v=p[attr]), "b": b.format(p=p["name"], v=p[attr])})  # fmt: skip
    return rows


def generate(seed: int = SEED) -> dict[str, object]:
    """Every data file, as {file name: rows (list of dicts) or a JSON object}."""
    rng = random.Random(seed)
    world = make_world(rng)
    known = people_of(("core", "probe"), world)
    pretrain = [{"text": general_document(rng, known)} for _ in range(9000)]
    train_texts = {r["text"] for r in pretrain}
    general = []
    while len(general) < 600:
        text = general_document(rng, known)
        if text not in train_texts:
            general.append({"text": text})
    domain = [{"text": domain_document(rng, world["people"])} for _ in range(1400)]
    inst = instruction_sets(rng, world)
    raw, planted = raw_pool(rng, inst["train"], inst["eval"])
    avoid = {r["prompt"] for r in inst["train"] + inst["eval"]}
    preference = preference_rows(rng, world, 800, avoid)
    paraphrases = paraphrase_pairs(rng, people_of("core", world), "train", 600)
    paraphrases += paraphrase_pairs(rng, people_of("probe", world), "test", 150)
    files: dict[str, object] = {
        "world.json": world,
        "pretrain.jsonl": pretrain,
        "general_heldout.jsonl": general,
        "domain_train.jsonl": domain[:1200],
        "domain_test.jsonl": domain[1200:],
        "paraphrases.jsonl": paraphrases,
        "instruct_train.jsonl": inst["train"],
        "instruct_eval.jsonl": inst["eval"],
        "instruct_raw.jsonl": raw,
        "natural_instructions.jsonl": natural_instructions(rng, world),
        "preference_train.jsonl": preference[:640],
        "preference_test.jsonl": preference[640:],
    }
    files["manifest.json"] = {
        "seed": seed,
        "rows": {k: len(v) for k, v in files.items() if k.endswith(".jsonl")},
        "planted_in_instruct_raw": planted,
    }
    return files


def write(out_dir: Path = DATA_DIR, seed: int = SEED) -> list[Path]:
    """Write every data file into out_dir (README.md is hand-written and left alone)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for name, content in generate(seed).items():
        path = out_dir / name
        if name.endswith(".jsonl"):
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in content)
        else:
            text = json.dumps(content, indent=1, ensure_ascii=False) + "\n"
        path.write_text(text, encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DATA_DIR, help="folder to write into (default: data/)")
    parser.add_argument("--seed", type=int, default=SEED)
    args = parser.parse_args()
    for path in write(args.out, args.seed):
        print(f"{path}  {path.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
