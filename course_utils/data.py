"""Loading the bundled tiny-world data in ``data/`` (see data/README.md for every file)."""

from __future__ import annotations

import json
from pathlib import Path

import datasets
import torch
from transformers import PreTrainedTokenizerBase

DATA_DIR = Path(__file__).resolve().parent.parent / "data"


def data_path(name: str) -> Path:
    """Path of a bundled data file, with a clear error if it is missing."""
    path = DATA_DIR / name
    if not path.exists():
        have = sorted(p.name for p in DATA_DIR.glob("*.json*"))
        raise FileNotFoundError(
            f"no data file {name!r} in {DATA_DIR}; found {have}. "
            "Regenerate with `make data` (tools/tinyworld.py) (see data/README.md)"
        )
    return path


def read_jsonl(name: str) -> list[dict]:
    """All rows of a bundled JSONL file, as dicts."""
    with data_path(name).open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def load_world() -> dict:
    """The people of the tiny world, their attributes and the cloze probes."""
    return json.loads(data_path("world.json").read_text(encoding="utf-8"))


def people(group: str | tuple[str, ...], world: dict | None = None) -> list[dict]:
    """The tiny world's people of a group ("core", "probe", "unseen") or of several groups."""
    world = world or load_world()
    groups = (group,) if isinstance(group, str) else tuple(group)
    known = {p["group"] for p in world["people"]}
    if not set(groups) <= known:
        raise ValueError(f"group must be among {sorted(known)}, found {groups}")
    return [p for p in world["people"] if p["group"] in groups]


def require_columns(dataset: datasets.Dataset, needed: list[str], what: str = "dataset") -> datasets.Dataset:
    """Raise a ValueError naming the columns needed and found if any is missing."""
    missing = [c for c in needed if c not in dataset.column_names]
    if missing:
        raise ValueError(
            f"{what} needs columns {needed}, found {dataset.column_names} (missing {missing}); "
            "see data/README.md for the fields of each file"
        )
    return dataset


def load_split(name: str, columns: list[str] | None = None) -> datasets.Dataset:
    """A bundled JSONL file as a ``datasets.Dataset``, checked for the columns a lesson needs."""
    ds = datasets.Dataset.from_list(read_jsonl(name))
    return require_columns(ds, columns, name) if columns else ds


def texts(name: str) -> list[str]:
    """The ``text`` field of a corpus file (pretrain, general_heldout, domain_train, domain_test)."""
    return [row["text"] for row in read_jsonl(name)]


def pack_texts(texts: list[str], tokenizer: PreTrainedTokenizerBase, block_size: int = 128) -> torch.Tensor:
    """Tokenize texts, join them with end-of-text tokens and cut into blocks: (n_blocks, block_size)."""
    ids: list[int] = []
    for encoded in tokenizer(list(texts), add_special_tokens=False)["input_ids"]:
        ids.extend(encoded + [tokenizer.eos_token_id])
    n = len(ids) // block_size
    if n == 0:
        raise ValueError(f"need at least {block_size} tokens to make one block, found {len(ids)}")
    return torch.tensor(ids[: n * block_size]).view(n, block_size)
