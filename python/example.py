"""python/example.py FILE.safetensors: a run's probe line recomputed in PyTorch from its bin/export file.

    bin/export runs/default --out runs/default.safetensors
    /usr/bin/python3 python/example.py runs/default.safetensors

Prints the attention on P0 per layer and rho per residual point of the twin on the run's natural probe
windows, beside the numbers the run itself wrote into probes.jsonl at that step.
"""
import sys

import torch

import sinktrace_torch as st


def numbers(values):
    return " ".join(f"{float(v):.4f}" for v in values)


def main(path):
    try:
        model, run = st.load(path)
    except (OSError, ValueError) as e:
        sys.exit(f"error: {e}")
    tokens = run.probe_tokens("natural")
    with torch.no_grad():
        out = model(tokens, run.probe_targets(), capture=True)
    line = run.probe_line("natural") or {}
    print(f"{path}: step {run.step}, {run.tokens} training tokens, {tokens.shape[0]} probe windows of "
          f"{tokens.shape[1]} tokens (chance {st.chance(tokens.shape[1]):.4f})")
    print(f"  probe loss   twin {out.ce.item():.4f}   run {line.get('probe_loss', float('nan')):.4f}")
    print(f"  a_p0 layer   twin {numbers(st.a_p0(out.attn).mean(1))}   run {numbers(line.get('a_p0_layer', []))}")
    print(f"  rho          twin {numbers(st.rho(out.resid))}   run {numbers(line.get('rho', []))}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__.strip().splitlines()[0])
    main(sys.argv[1])
