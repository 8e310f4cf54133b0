"""The course's SFT as a script for ``accelerate launch``: week 2's recipe on one GPU or many, by config file.

    accelerate launch --config_file configs/single_gpu.yaml -m course_utils.launch_sft --profile small
    accelerate launch --config_file configs/fsdp2.yaml -m course_utils.launch_sft --profile small --world-size 2

It trains exactly what ``course_utils.sft`` trains (TRL's ``SFTTrainer``, the recipe's ``SFTConfig``, the bundled
instruction rows): the tiny base model by ``SFT_RECIPE`` or SmolLM2-135M by ``SMALL_SFT_RECIPE``. The Trainer
reads the distribution (DDP, FSDP, DeepSpeed) from the environment that ``accelerate launch`` sets from the
config file; the script splits the recipe's batch over the processes, so the global batch stays the recipe's.
It checks the number of processes against ``--world-size``, and that accelerate joined them into one run (on a
machine without GPUs a multi-GPU config starts the processes but each trains alone), and stops with an error if not. Rank 0 writes
``launch.json`` (world size, the distribution the Trainer used, loss, time, GPU memory) into ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

import torch
from course_utils.dist_train import check_world_size


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--profile", choices=("tiny", "small"), default="small")
    p.add_argument("--world-size", type=int, default=1, help="processes expected (the config's num_processes)")
    p.add_argument("--out", default="build/launch_sft", help="folder for launch.json (and the model with --save)")
    p.add_argument("--max-steps", type=int, default=-1, help="stop after this many optimizer steps (-1: the recipe)")
    p.add_argument("--precision", default="", help="fp32 | bf16 | fp16 | '' (the course's rule for the profile)")
    p.add_argument("--save", action="store_true", help="save the fine-tuned model into --out")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> dict:
    args = parse_args(argv)
    world = check_world_size(args.world_size)
    from accelerate import PartialState
    from course_utils.cache import write_json_atomic
    from course_utils.checkpoints import load_tiny_base, small_model_source
    from course_utils.data import read_jsonl
    from course_utils.env import choose_precision, get_device
    from course_utils.models import load_model, load_tokenizer
    from course_utils.sft import SFT_RECIPE, SMALL_SFT_RECIPE, sft_config, train_sft
    from course_utils.tokenizer import CHAT_TEMPLATE

    state = PartialState()
    if state.num_processes != world:  # e.g. a multi-GPU, FSDP or DeepSpeed config on a machine without GPUs
        raise SystemExit(
            f"launch_sft: the launcher started {world} processes but accelerate joined {state.num_processes} "
            f"(distributed type {state.distributed_type.value}): each would train alone. These configs need GPUs; on "
            "a CPU, use `python -m torch.distributed.run --nproc_per_node N -m course_utils.dist_train` (week 8)"
        )
    precision = args.precision or choose_precision(args.profile, get_device())
    recipe = SFT_RECIPE if args.profile == "tiny" else SMALL_SFT_RECIPE
    recipe = dataclasses.replace(recipe, precision=precision)
    if recipe.batch_size % world:
        raise SystemExit(f"the recipe's batch of {recipe.batch_size} does not split over {world} processes")
    with state.main_process_first():  # rank 0 builds any missing cache entry, the others then load it
        if args.profile == "tiny":
            model, tokenizer = load_tiny_base()
        else:
            source = small_model_source("base")
            model, tokenizer = load_model(source, dtype=torch.float32), load_tokenizer(source)
            tokenizer.chat_template = CHAT_TEMPLATE  # ChatML with the {% generation %} markers TRL needs
    out = Path(args.out)
    config = sft_config(out, recipe, per_device_train_batch_size=recipe.batch_size // world, max_steps=args.max_steps,
                        logging_steps=5,
                        disable_tqdm=not state.is_main_process)  # fmt: skip
    trainer = train_sft(model, tokenizer, read_jsonl("instruct_train.jsonl"), config)
    logs = [entry for entry in trainer.state.log_history if "loss" in entry]
    result = {
        "profile": args.profile,
        "world_size": world,
        "distributed_type": getattr(trainer.accelerator.distributed_type, "value", "unknown"),
        "precision": precision,
        "steps": trainer.state.global_step,
        "global_batch": config.per_device_train_batch_size * world,
        "first_loss": logs[0]["loss"] if logs else None,
        "last_loss": logs[-1]["loss"] if logs else None,
        "train_runtime_s": trainer.state.log_history[-1].get("train_runtime"),
        "device": torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "peak_gpu_mem_bytes": int(torch.cuda.max_memory_allocated()) if torch.cuda.is_available() else 0,
    }
    if args.save:
        trainer.save_model(str(out))
    if state.is_main_process:
        write_json_atomic(out / "launch.json", result)
        print(result)
    return result


if __name__ == "__main__":
    main()
