"""``make bench``: the course's speed and memory, measured side by side.

Every comparison runs both sides in this one process, alternating, several times, and reports
medians and ratios (the machines are shared and noisy). Writes build/bench.md and build/bench.json.

    python -m tools.bench

The tiny model trains in the precision the course picks for the tiny profile (fp32 everywhere), so
the bench measures what the notebooks run. The GPU rows come from tools/bench_gpu.py.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import platform
import statistics
import tempfile
import time

import torch
from course_utils.checkpoints import BLOCK_SIZE, load_tiny_base, load_tiny_tokenizer, pretrain_blocks
from course_utils.env import autocast, choose_precision
from course_utils.measure import current_rss_bytes, measure
from course_utils.models import build_tiny_model, count_parameters
from course_utils.training import TrainConfig, train_causal_lm

from tools.runner import BUILD_DIR

REPEATS = 3


def peak_matmul_flops(dtype: torch.dtype, device: torch.device, seconds: float = 0.5, rounds: int = 3) -> float:
    """Best FLOP/s of a square matmul over a few sizes and rounds (a shared machine's peak is its best moment).

    Sizes go small first: where bf16 is emulated, big ones only cost time.
    """
    best = 0.0
    for _ in range(rounds):
        for n in (256, 512, 1024, 2048):
            a = torch.randn(n, n, device=device, dtype=dtype)
            a @ a
            reps, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                a @ a
                reps += 1
            if device.type == "cuda":
                torch.cuda.synchronize()
            rate = 2 * n**3 * reps / (time.perf_counter() - start)
            best = max(best, rate)
            if rate < 20e9 and device.type == "cpu":  # far from a fast path
                break
    return best


def minimal_loop(model, blocks: torch.Tensor, steps: int, batch_size: int, precision: str) -> float:
    """Forward, loss, backward, AdamW step, nothing else; returns tokens/s."""
    device = next(model.parameters()).device
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    generator = torch.Generator().manual_seed(0)
    start = time.perf_counter()
    for _ in range(steps):
        batch = blocks[torch.randint(len(blocks), (batch_size,), generator=generator)].to(device)
        with autocast(device, precision):
            loss = model(input_ids=batch, labels=batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return steps * batch_size * blocks.shape[1] / (time.perf_counter() - start)


def training_flops_per_token(model, seq_len: int = BLOCK_SIZE) -> float:
    """6 x (parameters doing matmuls) + 6 x layers x context x width (attention scores and values).

    The embedding lookup does no matmul; the output projection does, so with tied embeddings the
    count of parameters is right as it is; with untied ones the input embedding is dropped.
    """
    cfg = model.config
    n = count_parameters(model)
    if not cfg.tie_word_embeddings:
        n -= cfg.vocab_size * cfg.hidden_size
    return 6 * n + 6 * cfg.num_hidden_layers * seq_len * cfg.hidden_size


@functools.cache
def tiny_training_inputs():
    """The tiny tokenizer and the pretraining corpus in blocks, tokenized once for every comparison."""
    tokenizer = load_tiny_tokenizer()
    return tokenizer, pretrain_blocks(tokenizer)


def bench_training(device: torch.device, steps: int = 30, batch_size: int = 16) -> dict:
    """Item 1 and 2: the course's loop vs a minimal loop on the tiny base shape, and MFU."""
    tokenizer, blocks = tiny_training_inputs()
    precision = choose_precision("tiny", device)
    course, minimal = [], []
    warm_up = build_tiny_model(tokenizer, "base").to(device)
    minimal_loop(warm_up, blocks, 5, batch_size, precision)  # first calls pay for allocations and kernel choices

    def run_course(rep: int) -> None:
        model = build_tiny_model(tokenizer, "base", seed=rep).to(device)
        config = TrainConfig(steps=steps, batch_size=batch_size, eval_every=0, seed=rep, precision=precision)
        course.append(train_causal_lm(model, blocks, config, progress=False)["tokens_per_s"])

    def run_minimal(rep: int) -> None:
        model = build_tiny_model(tokenizer, "base", seed=rep).to(device)
        minimal.append(minimal_loop(model, blocks, steps, batch_size, precision))

    for rep in range(3 * REPEATS):  # short runs, many, in alternating order: the median shrugs off a noisy neighbour
        for run in (run_course, run_minimal) if rep % 2 == 0 else (run_minimal, run_course):
            run(rep)
    peak = {"fp32": peak_matmul_flops(torch.float32, device), "bf16": peak_matmul_flops(torch.bfloat16, device)}
    achieved = statistics.median(course) * training_flops_per_token(warm_up)
    return {
        "dtype": precision,
        "course_tokens_per_s": statistics.median(course),
        "minimal_tokens_per_s": statistics.median(minimal),
        "ratio_course_over_minimal": statistics.median(course) / statistics.median(minimal),
        "peak_flops_fp32": peak["fp32"],
        "peak_flops_bf16": peak["bf16"],
        "achieved_flops": achieved,
        "mfu": achieved / peak[precision],
    }


def bench_compile(device: torch.device, steps: int = 30, batch_size: int = 16) -> dict:
    """Tried for item 2: the minimal loop with the model under torch.compile vs eager, alternating."""
    tokenizer, blocks = tiny_training_inputs()
    precision = choose_precision("tiny", device)
    eager = build_tiny_model(tokenizer, "base").to(device)
    compiled = torch.compile(build_tiny_model(tokenizer, "base").to(device))
    start = time.perf_counter()
    minimal_loop(compiled, blocks, 3, batch_size, precision)
    compile_s = time.perf_counter() - start
    minimal_loop(eager, blocks, 3, batch_size, precision)
    speeds: dict[str, list[float]] = {"eager": [], "compiled": []}
    for _ in range(2 * REPEATS):
        speeds["eager"].append(minimal_loop(eager, blocks, steps, batch_size, precision))
        speeds["compiled"].append(minimal_loop(compiled, blocks, steps, batch_size, precision))
    eager_speed, compiled_speed = statistics.median(speeds["eager"]), statistics.median(speeds["compiled"])
    return {"eager_tokens_per_s": eager_speed, "compiled_tokens_per_s": compiled_speed,
            "ratio_compiled_over_eager": compiled_speed / eager_speed, "compile_s": compile_s}  # fmt: skip


def bench_sft(rows: int = 320) -> dict:
    """Item 3: SFTTrainer, padded vs packed, one epoch over the same rows, alternating."""
    import datasets
    from course_utils.data import read_jsonl
    from course_utils.sft import SFT_RECIPE, sft_config, train_sft

    datasets.disable_progress_bars()
    data = read_jsonl("instruct_train.jsonl")[:rows]
    speeds: dict[str, list[float]] = {"padded": [], "packed": []}
    for _ in range(2):
        for kind in ("padded", "packed"):
            model, tokenizer = load_tiny_base()
            with tempfile.TemporaryDirectory() as tmp:
                packing = kind == "packed"
                config = sft_config(tmp, SFT_RECIPE, num_train_epochs=1, packing=packing, logging_steps=10**6,
                                    disable_tqdm=True, per_device_train_batch_size=8 if packing else 32)  # fmt: skip
                trainer = train_sft(model, tokenizer, data, config)
            real_tokens = sum(len(r["input_ids"]) for r in trainer.train_dataset)
            speeds[kind].append(real_tokens / trainer.state.log_history[-1]["train_runtime"])
    padded, packed = statistics.median(speeds["padded"]), statistics.median(speeds["packed"])
    return {"padded_tokens_per_s": padded, "packed_tokens_per_s": packed, "ratio_packed_over_padded": packed / padded}


def _memory_probe(kind: str, source: str, queue) -> None:
    """In a fresh process: predicted vs measured peak memory of two training steps of SmolLM2-135M.

    Measured is the peak resident memory above what the process held before loading the model.
    """
    from course_utils.memory import activation_bytes_llama, training_memory
    from course_utils.models import load_model
    from peft import LoraConfig, get_peft_model

    batch, seq = 2, 128
    baseline = current_rss_bytes()  # python, torch and transformers themselves: not what the function predicts
    with measure(kind, show=False) as m:
        model = load_model(source, dtype=torch.float32)
        if kind == "lora":
            model = get_peft_model(model, LoraConfig(r=8, target_modules=["q_proj", "v_proj"]))
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=1e-5)
        ids = torch.randint(model.config.vocab_size, (batch, seq))
        for _ in range(2):
            model(input_ids=ids, labels=ids).loss.backward()
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    n_all, n_train = count_parameters(model), count_parameters(model, trainable_only=True)
    estimate = training_memory(n_all, n_train, activation_bytes=activation_bytes_llama(model.config, batch, seq))
    queue.put({"kind": kind, "params": n_all, "trainable": n_train, "predicted_bytes": estimate.total,
               "measured_bytes": m.peak_mem_bytes - baseline, "baseline_bytes": baseline})  # fmt: skip


def bench_memory() -> list[dict]:
    """Item 4: the memory function vs measured peaks (each in its own process, so peaks do not mix)."""
    from course_utils.checkpoints import small_model_source

    source = str(small_model_source("base"))  # converting the offline GGUF happens here, not in a measured process
    results = []
    ctx = multiprocessing.get_context("spawn")
    for kind in ("full", "lora"):
        queue = ctx.Queue()
        proc = ctx.Process(target=_memory_probe, args=(kind, source, queue))
        proc.start()
        result = queue.get(timeout=600)
        proc.join()
        result["error_pct"] = 100 * (result["predicted_bytes"] - result["measured_bytes"]) / result["measured_bytes"]
        results.append(result)
    return results


def bench_course() -> list[dict]:
    """Item 5: wall time and peak RSS per notebook from the last `make course`, against the budgets."""
    path = BUILD_DIR / "course" / "course.json"
    if not path.exists():
        return []
    return [
        {"notebook": r["notebook"], "status": r["status"], "wall_s": r["wall_s"], "peak_rss_bytes": r["peak_rss_bytes"],
         "within_budget": r["wall_s"] <= 240 and r["peak_rss_bytes"] <= 4 * 2**30}
        for r in json.loads(path.read_text())
    ]  # fmt: skip


def format_report(results: dict) -> str:
    """The Markdown table printed and written to build/bench.md."""
    t, lines = results["training"], [f"# make bench ({results['machine']}, {results['date']})", ""]
    lines += ["| measure | value | goal |", "|---|---|---|"]
    lines.append(f"| tiny training, course loop | {t['course_tokens_per_s']:,.0f} tokens/s ({t['dtype']}) | |")
    lines.append(f"| tiny training, minimal loop | {t['minimal_tokens_per_s']:,.0f} tokens/s | |")
    lines.append(f"| course / minimal | {t['ratio_course_over_minimal']:.2f} | >= 1.0 |")
    lines.append(
        f"| peak matmul fp32 / bf16 | {t['peak_flops_fp32'] / 1e9:,.0f} / {t['peak_flops_bf16'] / 1e9:,.1f} GFLOP/s | |"
    )
    lines.append(
        f"| MFU of the course loop ({t['dtype']}) | {t['mfu']:.0%} ({t['achieved_flops'] / 1e9:.0f} GFLOP/s) | >= 40% |"
    )
    if "compile" in results:
        c = results["compile"]
        lines.append(f"| torch.compile / eager, minimal loop | {c['ratio_compiled_over_eager']:.2f} "
                     f"({c['compiled_tokens_per_s']:,.0f} vs {c['eager_tokens_per_s']:,.0f} tokens/s; "
                     f"{c['compile_s']:.0f} s to compile) | |")  # fmt: skip
    if "compile_error" in results:
        lines.append(f"| torch.compile / eager, minimal loop | failed: {results['compile_error']} | |")
    if "sft" in results:
        s = results["sft"]
        lines.append(
            f"| SFT padded / packed | {s['padded_tokens_per_s']:,.0f} / {s['packed_tokens_per_s']:,.0f} tokens/s | |"
        )
        lines.append(f"| SFT packed / padded | {s['ratio_packed_over_padded']:.2f} | |")
    for m in results.get("memory", []):
        lines.append(f"| memory, {m['kind']} fine-tuning step of SmolLM2-135M (above the process's baseline) | predicted {m['predicted_bytes'] / 2**30:.2f} GiB, "
                     f"measured {m['measured_bytes'] / 2**30:.2f} GiB | error {m['error_pct']:+.0f}% (goal <= 10%) |")  # fmt: skip
    if results.get("memory"):
        lines.append("| memory, QLoRA step | not measured: the bench has no 4-bit path on CPU yet | error <= 10% |")
    for c in results.get("course", []):
        lines.append(f"| {c['notebook']} | {c['wall_s']:.0f} s, {c['peak_rss_bytes'] / 2**30:.2f} GiB, {c['status']} | "
                     f"{'within' if c['within_budget'] else 'OVER'} 4 min / 4 GB |")  # fmt: skip
    if isinstance(results["gpu"], dict):
        from tools.bench_gpu import format_gpu_report

        lines += ["", "## GPU section", "", format_gpu_report(results["gpu"])]
    else:
        lines.append(f"| GPU section | {results['gpu']} | |")
    return "\n".join(lines)


def machine_name() -> str:
    """The CPU's model name (Linux), thread count and GPU if any: the figures mean nothing without it."""
    name = platform.processor() or platform.machine()
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else ", no GPU"
    return f"{name}, {torch.get_num_threads()} threads{gpu}"


def main() -> None:
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    results = {
        "machine": machine_name(),
        "date": time.strftime("%Y-%m-%d"),
    }
    print("training throughput and MFU...", flush=True)
    results["training"] = bench_training(torch.device("cpu"))
    print("torch.compile vs eager...", flush=True)
    try:
        results["compile"] = bench_compile(torch.device("cpu"))
    except Exception as error:  # torch.compile needs a C++ compiler; a laptop may lack one
        results["compile_error"] = f"{type(error).__name__}: {str(error)[:120].replace('|', '/')}"
    print("SFT padded vs packed...", flush=True)
    results["sft"] = bench_sft()
    print("memory accounting...", flush=True)
    results["memory"] = bench_memory()
    results["course"] = bench_course()
    if device.type == "cuda":
        from tools.bench_gpu import run_gpu_bench

        print("GPU: small-profile training, one lever at a time...", flush=True)
        results["gpu"] = run_gpu_bench()
    else:
        results["gpu"] = "skipped: no GPU"
    BUILD_DIR.mkdir(exist_ok=True)
    (BUILD_DIR / "bench.json").write_text(json.dumps(results, indent=2) + "\n")
    report = format_report(results)
    (BUILD_DIR / "bench.md").write_text(report + "\n")
    print(report)


if __name__ == "__main__":
    main()
