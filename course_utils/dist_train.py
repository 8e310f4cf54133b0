"""Data-parallel and sharded training of the course's causal LM, one process per rank: week 8's script.

    python -m course_utils.dist_train --mode single --model DIR --out single.json        # one process
    python -m torch.distributed.run --standalone --nproc_per_node 2 \\
        -m course_utils.dist_train --mode ddp --world-size 2 --model DIR --out ddp.json   # two ranks
    (the same with --mode fsdp2: the parameters sharded across the ranks)

Every mode fine-tunes the model on the same packed blocks of the domain corpus, in the same order: step s takes
``global_batch`` blocks, and rank r of W takes its contiguous W-th of them, so W ranks of batch B/W see exactly
the blocks one process of batch B sees, and (every block having the same number of tokens) the mean of the
ranks' losses is the one process's loss. What each mode adds:

* ``ddp``: PyTorch's ``DistributedDataParallel`` and, side by side, the same model synchronised by hand (every
  gradient all-reduced and divided by W): the two must agree.
* ``fsdp2``: PyTorch's ``fully_shard`` (FSDP2; ZeRO stage 3: weights, gradients and optimizer state sharded) and,
  side by side, ZeRO stage 2 by hand (full weights; gradients reduce-scattered, each rank updating only its own
  shard of one flat vector with AdamW state for that shard alone, then all-gathering the weights).

Every mode is fp32 AdamW (no weight decay) and reports, per rank, the bytes of parameters and optimizer state it
holds, its peak memory (CUDA's allocator on a GPU, resident memory on a CPU), and the peak above what it held before
loading the model: CUDA's allocator, or on a CPU the anonymous resident memory (``AnonPeak``). A few ``single`` steps
in a fresh process are how week 8 checks its memory formula.

The script checks the world size it was given against the one asked for and stops with an error if they differ:
some launchers start fewer processes than asked without a word (``accelerate launch --cpu --num_processes 2``
starts one). Results go to ``--out`` as JSON, written by rank 0 once every rank has reported.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.distributed as dist

ROOT = Path(__file__).resolve().parent.parent
# torch 2.13 renamed the flat-tensor collectives; older releases (Colab's, a GPU image's) have only the old names
reduce_scatter = getattr(dist, "reduce_scatter_single", None) or dist.reduce_scatter_tensor
all_gather = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor
MODES = ("single", "ddp", "fsdp2")


def check_world_size(expected: int) -> int:
    """The world size the launcher set (WORLD_SIZE, 1 without a launcher); a clear error if it is not expected."""
    found = int(os.environ.get("WORLD_SIZE", "1"))
    if found != expected:
        raise SystemExit(
            f"dist_train: expected a world of {expected} process(es), found WORLD_SIZE={found}. Launch with "
            f"`python -m torch.distributed.run --nproc_per_node {expected} -m course_utils.dist_train ...` or "
            f"`accelerate launch --multi_gpu --num_processes {expected} ...` (on CPU, `accelerate launch --cpu` "
            "starts one process whatever --num_processes says)"
        )
    return found


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=MODES, required=True)
    p.add_argument("--world-size", type=int, default=1, help="processes expected; checked against the launcher's")
    p.add_argument("--model", required=True, help="a saved causal LM (directory with model and tokenizer)")
    p.add_argument("--out", required=True, help="JSON file for the results")
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--global-batch", type=int, default=16, help="blocks per optimizer step, all ranks together")
    p.add_argument("--seq", type=int, default=128, help="tokens per block")
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0, help="order of the blocks")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    args = p.parse_args(argv)
    if args.global_batch % args.world_size:
        p.error(f"--global-batch must be a multiple of --world-size, found {args.global_batch} and {args.world_size}")
    return args


def batches(blocks: torch.Tensor, args: argparse.Namespace, rank: int, world: int):
    """For each step, this rank's (global_batch / world, seq) slice of that step's blocks."""
    g = torch.Generator().manual_seed(args.seed)
    order = torch.randperm(len(blocks), generator=g)
    per_rank = args.global_batch // world
    for step in range(args.steps):
        idx = order[(step * args.global_batch + torch.arange(args.global_batch)) % len(blocks)]
        yield blocks[idx[rank * per_rank : (rank + 1) * per_rank]]


def all_reduce_gradients(model: torch.nn.Module, world: int) -> None:
    """Data parallelism's whole synchronisation, by hand: every gradient summed over the ranks, divided by W."""
    for p in model.parameters():
        if p.grad is not None:
            dist.all_reduce(p.grad)
            p.grad /= world


class ShardedAdamW:
    """ZeRO stage 2 by hand: full weights on every rank; gradients and AdamW state sharded over the ranks.

    All parameters are viewed as one flat vector, padded to a multiple of W; rank r owns the r-th of W equal
    pieces. After backward, a reduce-scatter leaves each rank the averaged gradient of its piece only; AdamW
    updates that piece (its moments exist for that piece only); an all-gather gives every rank the new weights.
    """

    def __init__(self, model: torch.nn.Module, lr: float, rank: int, world: int):
        self.params = list(model.parameters())
        flat = torch.cat([p.detach().reshape(-1) for p in self.params])
        self.numel, self.world = flat.numel(), world
        self.size = -(-self.numel // world)  # ceil: each rank's piece
        flat = torch.nn.functional.pad(flat, (0, self.size * world - self.numel))
        self.piece = torch.nn.Parameter(flat[rank * self.size : (rank + 1) * self.size].clone())
        self.optimizer = torch.optim.AdamW([self.piece], lr=lr, weight_decay=0.0)

    def step(self) -> None:
        grads = torch.cat([p.grad.reshape(-1) for p in self.params])
        grads = torch.nn.functional.pad(grads, (0, self.size * self.world - self.numel))
        piece_grad = torch.empty(self.size, dtype=grads.dtype, device=grads.device)
        reduce_scatter(piece_grad, grads)  # sum over ranks, each rank gets its piece
        self.piece.grad = piece_grad / self.world
        self.optimizer.step()
        full = torch.empty(self.size * self.world, dtype=grads.dtype, device=grads.device)
        all_gather(full, self.piece.detach())
        torch.nn.utils.vector_to_parameters(full[: self.numel], self.params)
        for p in self.params:
            p.grad = None

    def state_bytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in self.optimizer.state[self.piece].values() if t.dim() > 0)


def local_bytes(tensors) -> int:
    """Bytes this rank holds of tensors (the local shard of a DTensor, all of a plain tensor)."""
    total = 0
    for t in tensors:
        t = t.to_local() if hasattr(t, "to_local") else t
        total += t.numel() * t.element_size()
    return total


def adam_state_tensors(optimizer: torch.optim.Optimizer) -> list[torch.Tensor]:
    return [t for s in optimizer.state.values() for t in s.values() if torch.is_tensor(t) and t.dim() > 0]


class AnonPeak:
    """The peak of this process's anonymous resident memory (RssAnon: heap and mmapped blocks, no shared libraries),
    sampled every millisecond by a background thread; Linux keeps a peak of all resident memory only (VmHWM), which
    also counts pages of PyTorch's libraries touched for the first time, more or fewer with the state of the page
    cache. 0 where /proc/self/status is missing."""

    def __init__(self):
        import threading

        self.peak, self.running = self.read(), True
        self.thread = threading.Thread(target=self.sample, daemon=True)
        self.thread.start()

    @staticmethod
    def read() -> int:
        try:
            for line in Path("/proc/self/status").read_text().splitlines():
                if line.startswith("RssAnon:"):
                    return int(line.split()[1]) * 1024
        except OSError:
            pass
        return 0

    def sample(self) -> None:
        while self.running:
            self.peak = max(self.peak, self.read())
            time.sleep(0.001)

    def stop(self) -> int:
        self.running = False
        self.thread.join()
        return max(self.peak, self.read())


def peak_bytes(device: torch.device) -> int:
    from course_utils.measure import process_peak_rss_bytes

    return int(torch.cuda.max_memory_allocated(device)) if device.type == "cuda" else process_peak_rss_bytes()


def train(args: argparse.Namespace) -> dict:
    """Run the mode on this rank; return what rank 0 writes (every rank's numbers gathered)."""
    world = check_world_size(1 if args.mode == "single" else args.world_size)
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    device = torch.device("cuda", local_rank) if args.device == "cuda" else torch.device("cpu")
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        if dist.get_world_size() != args.world_size:  # the launcher's word against the process group's
            raise SystemExit(f"expected {args.world_size} ranks in the process group, found {dist.get_world_size()}")

    from course_utils.data import pack_texts, texts
    from course_utils.models import count_parameters, load_model, load_tokenizer

    blocks = pack_texts(texts("domain_train.jsonl"), load_tokenizer(args.model), args.seq)
    result = {"mode": args.mode, "world_size": world, "steps": args.steps, "global_batch": args.global_batch,
              "seq": args.seq, "lr": args.lr, "seed": args.seed, "device": device.type}  # fmt: skip
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    anon = AnonPeak() if device.type == "cpu" else None  # CPU: the heap and the tensors, not the libraries' pages
    baseline = torch.cuda.memory_allocated(device) if device.type == "cuda" else anon.peak
    model = load_model(args.model, dtype=torch.float32).to(device).train()
    result["n_params"] = count_parameters(model)
    result["param_bytes_total"] = sum(p.numel() * p.element_size() for p in model.parameters())
    by_hand = by_hand_opt = None
    if args.mode == "ddp":
        by_hand = load_model(args.model, dtype=torch.float32).to(device).train()
        by_hand_opt = torch.optim.AdamW(by_hand.parameters(), lr=args.lr, weight_decay=0.0)
        model = torch.nn.parallel.DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
    elif args.mode == "fsdp2":
        from torch.distributed.device_mesh import init_device_mesh
        from torch.distributed.fsdp import fully_shard

        by_hand = load_model(args.model, dtype=torch.float32).to(device).train()
        by_hand_opt = ShardedAdamW(by_hand, args.lr, rank, world)
        mesh = init_device_mesh(device.type, (world,))
        for layer in model.model.layers:  # each decoder layer its own shard group, gathered only while it runs
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)  # the rest: embeddings (tied to the output layer), final norm
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.0)

    losses, by_hand_losses = [], []
    start = time.perf_counter()
    for ids in batches(blocks, args, rank, world):
        ids = ids.to(device)  # (global_batch / world, seq)
        loss = model(input_ids=ids, labels=ids).loss  # mean over this rank's tokens
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(global_mean(loss, world))
        if by_hand is not None:
            loss = by_hand(input_ids=ids, labels=ids).loss
            loss.backward()
            if args.mode == "ddp":
                all_reduce_gradients(by_hand, world)
                by_hand_opt.step()
                by_hand_opt.zero_grad(set_to_none=True)
            else:
                by_hand_opt.step()
            by_hand_losses.append(global_mean(loss, world))
    result["train_s"] = time.perf_counter() - start
    result["losses"], result["by_hand_losses"] = losses, by_hand_losses
    if by_hand is not None:
        full = {n: (p.full_tensor() if hasattr(p, "full_tensor") else p) for n, p in model.named_parameters()}
        full = {n.removeprefix("module."): p for n, p in full.items()}
        result["by_hand_max_param_diff"] = max(
            (full[n].detach() - p.detach()).abs().max().item() for n, p in by_hand.named_parameters()
        )
    mine = {
        "param_bytes": local_bytes(model.parameters()),
        "optimizer_bytes": local_bytes(adam_state_tensors(optimizer)),
        "by_hand_optimizer_bytes": by_hand_opt.state_bytes() if isinstance(by_hand_opt, ShardedAdamW) else None,
        "peak_bytes": peak_bytes(device),
        "peak_above_baseline_bytes": (anon.stop() if anon else peak_bytes(device)) - baseline,
    }
    per_rank = [mine]
    if world > 1:
        per_rank = [None] * world
        dist.all_gather_object(per_rank, mine)
    for key in mine:
        result[f"{key}_per_rank"] = [r[key] for r in per_rank]
    if world > 1:
        dist.destroy_process_group()
    return result


def global_mean(loss: torch.Tensor, world: int) -> float:
    """The loss averaged over the ranks (each rank's loss is a mean over the same number of tokens)."""
    loss = loss.detach().clone()
    if world > 1:
        dist.all_reduce(loss)
    return loss.item() / world


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    result = train(args)
    if int(os.environ.get("RANK", "0")) == 0:
        from course_utils.cache import write_json_atomic

        write_json_atomic(Path(args.out), result)


def launch(args: list[str], nproc: int = 1, timeout: float = 600) -> tuple[dict, float]:
    """Run this script in nproc fresh processes (torchrun for nproc > 1); return (its JSON results, wall seconds).

    The processes get this interpreter (sys.executable), the course on PYTHONPATH, and glibc told to give large
    blocks back at once (MALLOC_MMAP_THRESHOLD_), so that resident memory follows the live tensors.
    """
    out = Path(args[args.index("--out") + 1])
    out.unlink(missing_ok=True)
    launcher = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}"]
    command = [*(launcher if nproc > 1 else [sys.executable]), "-m", "course_utils.dist_train", *args]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "MALLOC_MMAP_THRESHOLD_": "65536", "TRANSFORMERS_VERBOSITY": "error"}  # fmt: skip
    start = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - start
    if done.returncode != 0 or not out.exists():
        raise RuntimeError(
            f"expected {' '.join(command[1:])} to finish and write {out}; it exited with {done.returncode}:\n"
            f"{done.stderr[-3000:]}"
        )
    return json.loads(out.read_text()), wall


if __name__ == "__main__":
    main()
