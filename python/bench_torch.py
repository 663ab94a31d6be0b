"""python/bench_torch.py: training speed of the PyTorch twin against bin/train (make bench-torch).

    /usr/bin/python3 python/bench_torch.py [--config runs/default.conf] [--steps 10] [--threads 2]

bin/train trains CONFIG's model and batch for STEPS steps with THREADS threads, on the synthetic repeat
stream of 256 symbols (vocab 257, as the byte corpus; nothing to fetch; its generator costs well under
1% of a step, where the Markov stream draws a 256 x 256 table per document), and bin/export writes its
checkpoint. The twin loads that file (float32) and trains STEPS steps of the same shape with the same
threads: forward, backward, gradient clipping and AdamW (weight decay on matrices only), on random
windows. Each side's tokens/s counts the steps after the first two (warm-up): bin/train's from its
train.jsonl ms_per_step, the twin's from a wall clock around each step. Prints both, their ratio, and the
BLAS library torch loaded.
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sinktrace_torch as st  # noqa: E402

WARMUP = 2
STREAM = ["--stream", "repeat", "--stream_vocab", "256"]


def train_c(config, steps, threads, run_dir):
    """bin/train's tokens/s over the steps after the warm-up"""
    flags = ["--out_dir", os.path.dirname(run_dir), "--run_name", os.path.basename(run_dir), "--steps", str(steps),
             "--threads", str(threads), "--log_every", "1", "--eval_every", str(steps), "--eval_batches", "1",
             "--warmup_steps", "1", "--probe_n", "2", "--probe_len", "16", "--ckpt_every", "0"]
    subprocess.run(["bin/train", "--config", config, *STREAM, *flags], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(run_dir, "train.jsonl")) as f:
        lines = [json.loads(line) for line in f]
    timed = [line for line in lines if line["step"] > WARMUP]
    tokens = timed[-1]["tokens"] - next(line["tokens"] for line in lines if line["step"] == WARMUP)
    return tokens / sum(line["ms_per_step"] / 1000 for line in timed)


def train_torch(export, steps, threads):
    """the twin's tokens/s over the steps after the warm-up, and its first and last loss"""
    torch.set_num_threads(threads)
    model, run = st.load(export)
    model.train()
    cfg = st.config_pairs(run.metadata["config"])
    B, T, V = int(cfg["batch_size"]) * int(cfg["grad_accum"]), model.c.seq_len, model.c.vocab_size
    matrices = [p for p in model.parameters() if p.dim() >= 2]
    gains = [p for p in model.parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": matrices, "weight_decay": float(cfg["weight_decay"])},
                             {"params": gains, "weight_decay": 0.0}], lr=float(cfg["lr"]),
                            betas=(float(cfg["beta1"]), float(cfg["beta2"])), eps=float(cfg["eps"]))
    windows = torch.randint(0, V - 1, (steps, B, T + 1), generator=torch.Generator().manual_seed(1))
    seconds, losses = 0.0, []
    for step in range(steps):
        start = time.perf_counter()
        out = model(windows[step, :, :-1], windows[step, :, 1:])
        opt.zero_grad(set_to_none=True)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), float(cfg["grad_clip"]))
        opt.step()
        if step >= WARMUP:
            seconds += time.perf_counter() - start
        losses.append(out.loss.item())
    return B * T * (steps - WARMUP) / seconds, losses[0], losses[-1], (B, T)


def loaded_blas():
    """the BLAS libraries mapped into this process (after torch ran a matrix product)"""
    with open("/proc/self/maps") as f:
        paths = {line.split()[-1] for line in f if "blas" in line.lower() and "/" in line}
    return ", ".join(sorted(paths)) or "none found"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="runs/default.conf")
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=2)
    a = parser.parse_args()
    if a.steps <= WARMUP:
        sys.exit(f"error: --steps: expected more than the {WARMUP} warm-up steps, found {a.steps}")
    work = tempfile.mkdtemp(prefix="sinktrace_bench_torch_")
    try:
        run_dir, export = os.path.join(work, "bench"), os.path.join(work, "bench.safetensors")
        c_rate = train_c(a.config, a.steps, a.threads, run_dir)
        subprocess.run(["bin/export", run_dir, "--out", export], check=True, stdout=subprocess.DEVNULL)
        torch_rate, first, last, (B, T) = train_torch(export, a.steps, a.threads)
    finally:
        shutil.rmtree(work)
    print(f"model of {a.config}, batch {B} x {T} tokens, {a.threads} threads, steps {WARMUP + 1}-{a.steps} timed")
    print(f"bin/train: {c_rate:,.0f} tokens/s")
    print(f"PyTorch {torch.__version__} twin (float32, eager): {torch_rate:,.0f} tokens/s "
          f"(loss {first:.3f} -> {last:.3f}); BLAS: {loaded_blas()}")
    print(f"bin/train is {c_rate / torch_rate:.2f}x the PyTorch twin's speed")


if __name__ == "__main__":
    main()
