"""guo_replica: Guo et al.'s one-block Bigram-Backcopy experiment (arXiv 2410.13835) in PyTorch, with the
pieces where this project's model may differ from theirs made switchable (positions, norm, MLP,
initialisation), to ask which piece sets how fast the BOS sink forms. docs/EMERGENCE.md ("The controls at
Guo's own setting") has the runs and their commands.

With --pos rope --norm rms --mlp swiglu --init normal (the defaults) the model is bin/train's dense
model; --pos learned --norm layer --mlp relu --init torch --embed_std 1 is a GPT-2-style guess at theirs
(learned absolute positions, LayerNorm, a ReLU MLP, PyTorch's default initialisation).

    /usr/bin/python3 python/guo_replica.py --steps 300                 # bin/train's model, batch 64
    /usr/bin/python3 python/guo_replica.py --steps 300 --pos learned --norm layer --mlp relu --init torch --embed_std 1

Streams: `bb` is Guo's (bigrams counted from a prepared byte corpus, its 3 most frequent symbols the
triggers; after a trigger the symbol two back returns); `unigram` draws each document's symbols from its
own Dirichlet(alpha) unigram over V symbols, with 3 trigger symbols placed at rate trigger_prob and the
same back-copy rule. One JSON line per probe on stdout: the step, the training loss, and attention on
position 0 (BOS, or the first symbol without it): per block and head, and in the last block split by
query class (trigger queries, whose next symbol is a copy, and ordinary ones).
Shapes: B windows of T positions, C = d_model, H heads of D = C / H channels, F MLP units, V symbols.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

import sinktrace_torch as st

N_TRIGGERS = 3


def read_shard(path):
    """token ids and BOS id of a bin/prepare shard (common/binfile.h: magic, version, n_fields, int64
    fields vocab_size, n_tokens, token_bytes, bos_id, n_docs; then the ids)"""
    with open(path, "rb") as f:
        raw = f.read()
    if raw[:8] != b"STSHARD\0":
        raise ValueError(f"{path}: magic: expected STSHARD (a bin/prepare shard), found {raw[:8]!r}")
    n_fields = int.from_bytes(raw[12:16], "little")
    field = np.frombuffer(raw[16:16 + 8 * n_fields], dtype="<i8")
    n_tokens, token_bytes, bos = int(field[1]), int(field[2]), int(field[3])
    start = 16 + 8 * n_fields
    if len(raw) < start + n_tokens * token_bytes:
        raise ValueError(f"{path}: expected {n_tokens} ids of {token_bytes} bytes, found a shorter file")
    ids = np.frombuffer(raw[start:start + n_tokens * token_bytes], dtype=f"<u{token_bytes}")
    return ids.astype(np.int64), bos


class BigramBackcopy:
    """Guo's stream over a corpus's bigrams; symbol ids are the corpus's, BOS is the last id"""

    def __init__(self, shard_path):
        ids, self.bos = read_shard(shard_path)
        self.vocab = self.bos + 1
        keep = (ids[:-1] != self.bos) & (ids[1:] != self.bos)  # pairs across a document start are not bigrams
        counts = np.zeros((self.bos, self.bos))
        np.add.at(counts, (ids[:-1][keep], ids[1:][keep]), 1)
        unigram = counts.sum(0)
        self.triggers = np.argsort(-unigram, kind="stable")[:N_TRIGGERS]  # most frequent, ties to the smaller id
        self.is_trigger = np.zeros(self.vocab, bool)
        self.is_trigger[self.triggers] = True
        first = np.where(self.is_trigger[:-1], 0, unigram)  # a document starts with an ordinary symbol
        self.first_cdf = np.cumsum(first) / first.sum()
        self.row_cdf = np.cumsum(counts, 1) / np.maximum(counts.sum(1, keepdims=True), 1)
        self.counts = counts

    def documents(self, B, n, rng):
        """[B][n] symbols: x_0 from the unigram without triggers, then x_t = x_{t-2} after a trigger, else
        a draw from the bigram row of x_{t-1}"""
        x = np.zeros((B, n), np.int64)
        x[:, 0] = np.searchsorted(self.first_cdf, rng.random(B), side="right")
        for t in range(1, n):
            drawn = (self.row_cdf[x[:, t - 1]] < rng.random(B)[:, None]).sum(1)
            copy = self.is_trigger[x[:, t - 1]] & (t >= 2)
            x[:, t] = np.where(copy, x[:, max(t - 2, 0)], drawn)
        return x


class UnigramBackcopy:
    """per document a Dirichlet(alpha) unigram over symbols 0..V-1; symbols V..V+2 are the triggers,
    each position past the first one is a trigger with probability trigger_prob; BOS is id V+3"""

    def __init__(self, V, alpha, trigger_prob):
        self.V, self.alpha, self.trigger_prob = V, alpha, trigger_prob
        self.bos = V + N_TRIGGERS
        self.vocab = self.bos + 1
        self.is_trigger = np.zeros(self.vocab, bool)
        self.is_trigger[V:V + N_TRIGGERS] = True

    def documents(self, B, n, rng):
        cdf = np.cumsum(rng.dirichlet(np.full(self.V, self.alpha), size=B), 1)
        x = np.zeros((B, n), np.int64)
        for t in range(n):
            drawn = np.minimum((cdf < rng.random(B)[:, None]).sum(1), self.V - 1)
            placed = (rng.random(B) < self.trigger_prob) & (t >= 1)
            drawn = np.where(placed, self.V + rng.integers(0, N_TRIGGERS, B), drawn)
            copy = self.is_trigger[x[:, t - 1]] & (t >= 2) if t >= 1 else np.zeros(B, bool)
            x[:, t] = np.where(copy, x[:, max(t - 2, 0)], drawn)
        return x


def windows(stream, B, T, bos, rng):
    """[B][T+1] ids: documents from their start, BOS in front when bos (inputs [:, :T], targets [:, 1:])"""
    x = stream.documents(B, T + 1 - bos, rng)
    return torch.from_numpy(np.concatenate([np.full((B, 1), stream.bos), x], 1) if bos else x)


class RMSNorm(nn.Module):
    """the twin's rmsnorm with its gain as a parameter (eps as bin/train's rms_eps)"""

    def __init__(self, C, eps=1e-6):
        super().__init__()
        self.gain, self.eps = nn.Parameter(torch.ones(C)), eps

    def forward(self, x):
        return st.rmsnorm(x, self.gain, self.eps)


class Block(nn.Module):
    def __init__(self, a):
        super().__init__()
        C, Fh = a.d_model, a.d_ff
        norm = RMSNorm if a.norm == "rms" else nn.LayerNorm
        self.attn_norm, self.mlp_norm = norm(C), norm(C)
        self.wq, self.wk, self.wv, self.wo = (nn.Linear(C, C, bias=False) for _ in range(4))
        self.w_up, self.w_down = nn.Linear(C, Fh, bias=False), nn.Linear(Fh, C, bias=False)
        self.w_gate = nn.Linear(C, Fh, bias=False) if a.mlp == "swiglu" else None
        self.H, self.rope, self.attn = a.n_head, a.pos == "rope", None

    def forward(self, x):
        B, T, C = x.shape
        h = self.attn_norm(x)
        q, k, v = (w(h).view(B, T, self.H, C // self.H) for w in (self.wq, self.wk, self.wv))
        if self.rope:
            cos, sin = st.rope_angles(T, C // self.H, 10000.0)
            q, k = st.rope(q, cos, sin), st.rope(k, cos, sin)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)  # [B][H][T][D]
        scores = q @ k.transpose(-1, -2) / math.sqrt(C // self.H)  # [B][H][T][T]
        future = torch.triu(torch.ones(T, T, dtype=torch.bool), 1)
        self.attn = scores.masked_fill(future, float("-inf")).softmax(-1)
        x = x + self.wo((self.attn @ v).transpose(1, 2).reshape(B, T, C))
        h = self.mlp_norm(x)
        hidden = F.silu(self.w_gate(h)) * self.w_up(h) if self.w_gate is not None else F.relu(self.w_up(h))
        return x + self.w_down(hidden)


class Model(nn.Module):
    def __init__(self, a, vocab):
        super().__init__()
        self.wte = nn.Embedding(vocab, a.d_model)
        self.wpe = nn.Embedding(a.seq_len, a.d_model) if a.pos == "learned" else None
        self.blocks = nn.ModuleList(Block(a) for _ in range(a.n_layer))
        self.final_norm = RMSNorm(a.d_model) if a.norm == "rms" else nn.LayerNorm(a.d_model)
        self.lm_head = nn.Linear(a.d_model, vocab, bias=False)
        for name, p in self.named_parameters():  # matrices; --init torch keeps nn.Linear's own
            embedding = name.startswith(("wte", "wpe"))
            if p.dim() == 2 and (a.init == "normal" or embedding):
                std = a.embed_std if embedding and a.embed_std is not None else a.init_std
                if name.endswith(("wo.weight", "w_down.weight")):  # as bin/train: residual outputs / sqrt(2L)
                    std /= math.sqrt(2 * a.n_layer)
                nn.init.normal_(p, std=std)

    def forward(self, ids):
        h = self.wte(ids)
        if self.wpe is not None:
            h = h + self.wpe(torch.arange(ids.shape[1]))
        for block in self.blocks:
            h = block(h)
        return self.lm_head(self.final_norm(h))


def attention_on_p0(attn, is_trigger_query):
    """from attn [B][H][T][T] and a [B][T] mask: (per head, ordinary queries, trigger queries) means of
    the attention on key 0 over queries t >= 1, the last two averaged over heads"""
    p0 = attn[:, :, 1:, 0]                            # [B][H][T-1]
    trig = is_trigger_query[:, None, 1:].expand_as(p0)
    return (p0.mean((0, 2)).tolist(), p0[~trig].mean().item(), p0[trig].mean().item())


def probe(model, ids, is_trigger, step, loss):
    with torch.no_grad():
        model(ids)
    trig = torch.from_numpy(is_trigger)[ids]
    per_head = [[round(x, 4) for x in attention_on_p0(b.attn, trig)[0]] for b in model.blocks]
    _, ordinary, trigger = attention_on_p0(model.blocks[-1].attn, trig)
    prev = torch.diagonal(model.blocks[-1].attn, -1, 2, 3)  # [B][H][T-1]: query t on key t-1
    prev_trigger = prev[trig[:, None, 1:].expand_as(prev)].mean().item()
    return dict(step=step, train_loss=loss, p0_layer_head=per_head, p0_ordinary=round(ordinary, 4),
                p0_trigger=round(trigger, 4), prev_trigger=round(prev_trigger, 4))


def arguments(argv):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--stream", choices=["bb", "unigram"], default="bb")
    p.add_argument("--corpus", default="data/prepared/moby/train.bin", help="bb: the shard whose bigrams it draws")
    p.add_argument("--V", type=int, default=64, help="unigram: ordinary symbols")
    p.add_argument("--alpha", type=float, default=0.1, help="unigram: Dirichlet concentration per symbol")
    p.add_argument("--trigger_prob", type=float, default=0.1, help="unigram: rate of placed triggers")
    p.add_argument("--bos", type=int, choices=[0, 1], default=1)
    p.add_argument("--pos", choices=["rope", "learned"], default="rope")
    p.add_argument("--norm", choices=["rms", "layer"], default="rms")
    p.add_argument("--mlp", choices=["swiglu", "relu"], default="swiglu")
    p.add_argument("--init", choices=["normal", "torch"], default="normal", help="torch: nn.Linear's own")
    p.add_argument("--init_std", type=float, default=0.02)
    p.add_argument("--embed_std", type=float, default=None, help="embeddings' std (default: init_std)")
    p.add_argument("--d_model", type=int, default=256)
    p.add_argument("--n_head", type=int, default=1)
    p.add_argument("--n_layer", type=int, default=1)
    p.add_argument("--d_ff", type=int, default=1024)
    p.add_argument("--seq_len", type=int, default=256)
    p.add_argument("--batch_size", type=int, default=64)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--lr", type=float, default=3e-4)
    p.add_argument("--warmup_steps", type=int, default=0)
    p.add_argument("--weight_decay", type=float, default=1e-4)
    p.add_argument("--grad_clip", type=float, default=1.0, help="0: none")
    p.add_argument("--probe_every", type=int, default=25)
    p.add_argument("--seed", type=int, default=42)
    p.add_argument("--threads", type=int, default=1)
    a = p.parse_args(argv)
    if a.d_model % a.n_head:
        p.error(f"--n_head: expected a divisor of d_model {a.d_model}, found {a.n_head}")
    return a


def main(argv):
    a = arguments(argv)
    torch.manual_seed(a.seed)
    torch.set_num_threads(a.threads)
    rng = np.random.default_rng(a.seed)
    stream = BigramBackcopy(a.corpus) if a.stream == "bb" else UnigramBackcopy(a.V, a.alpha, a.trigger_prob)
    model = Model(a, stream.vocab)
    matrices = [p for p in model.parameters() if p.dim() == 2]  # decayed, as bin/train; gains and biases not
    others = [p for p in model.parameters() if p.dim() != 2]
    opt = torch.optim.AdamW([dict(params=matrices), dict(params=others, weight_decay=0.0)], lr=a.lr,
                            betas=(0.9, 0.99), eps=1e-8, weight_decay=a.weight_decay)
    probe_ids = windows(stream, 32, a.seq_len, a.bos, np.random.default_rng(12345))[:, :a.seq_len]
    loss, start = None, time.time()
    for step in range(a.steps + 1):
        if step % a.probe_every == 0 or step == a.steps:
            line = probe(model, probe_ids, stream.is_trigger, step, loss)
            print(json.dumps(dict(line, seconds=round(time.time() - start, 1))), flush=True)
        if step == a.steps:
            break
        ids = windows(stream, a.batch_size, a.seq_len, a.bos, rng)
        logits = model(ids[:, :-1])
        loss_t = F.cross_entropy(logits.reshape(-1, stream.vocab), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss_t.backward()
        if a.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), a.grad_clip)
        for group in opt.param_groups:  # linear warmup, then constant
            group["lr"] = a.lr * min(1.0, (step + 1) / a.warmup_steps) if a.warmup_steps else a.lr
        opt.step()
        loss = round(loss_t.item(), 4)


if __name__ == "__main__":
    main(sys.argv[1:])
