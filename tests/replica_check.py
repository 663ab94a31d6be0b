"""tests/replica_check.py: python/guo_replica.py checked (run by tests/test_torch.c; exits 1 on a failure).

- with its default pieces the replica computes the twin's logits (python/sinktrace_torch.py, itself
  checked against the C model) for the same weights, with learned positions the twin's with
  learned_pos, with GPT-2's pieces (learned positions, LayerNorm, ReLU) the twin's with those keys;
  a ReLU MLP in place of SwiGLU changes the logits, so the comparison can fail;
- Guo's stream on a corpus with known counts: the triggers are its most frequent symbols, a trigger is
  always followed by the symbol two back, every other pair is a bigram the corpus has, no document
  starts with a trigger;
- the per-document unigram stream: the copy rule, and triggers placed at their rate;
- attention on P0 by query class, on uniform causal attention (known answer: st.chance(T)).
"""
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.realpath(__file__)), "..", "python"))
import guo_replica as gr  # noqa: E402
import sinktrace_torch as st  # noqa: E402

failures = []


def check(ok, what):
    print(("ok   " if ok else "FAIL ") + what)
    if not ok:
        failures.append(what)


def twin_with_weights_of(replica, a, vocab):
    """the twin's dense model (one expert) carrying the replica's weights"""
    learned, layer = int(a.pos == "learned"), a.norm == "layer"
    c = st.Config(vocab_size=vocab, seq_len=a.seq_len, d_model=a.d_model, n_layer=a.n_layer, n_head=a.n_head,
                  n_kv_head=a.n_head, head_dim=a.d_model // a.n_head, rope_theta=10000.0, learned_pos=learned,
                  qk_norm=0, attn_window=0,
                  attn_sink_logit=0, attn_gate=0, n_expert=1, top_k=1, d_ff=a.d_ff, norm_topk=0, aux_loss_coef=0.0,
                  z_loss_coef=0.0, tie_embeddings=0, rms_eps=1e-5 if layer else 1e-6,  # nn.LayerNorm's eps is 1e-5
                  norm=a.norm, mlp=a.mlp)
    twin = st.SinkTrace(c).double()

    def copy_norm(gain, bias, theirs):
        gain.copy_(theirs.weight if layer else theirs.gain)
        if layer:
            bias.copy_(theirs.bias)

    with torch.no_grad():
        twin.wte.copy_(replica.wte.weight)
        if learned:
            twin.wpe.copy_(replica.wpe.weight)
        copy_norm(twin.final_norm, twin.final_norm_bias, replica.final_norm)
        twin.lm_head.copy_(replica.lm_head.weight)
        for ours, theirs in zip(replica.blocks, twin.blocks):
            copy_norm(theirs.attn_norm, theirs.attn_norm_bias, ours.attn_norm)
            copy_norm(theirs.moe_norm, theirs.moe_norm_bias, ours.mlp_norm)
            for name in ("wq", "wk", "wv", "wo"):
                getattr(theirs.attn, name).copy_(getattr(ours, name).weight)
            if a.mlp == "swiglu":
                theirs.moe.w_gate[0].copy_(ours.w_gate.weight)
            theirs.moe.w_up[0].copy_(ours.w_up.weight)
            theirs.moe.w_down[0].copy_(ours.w_down.weight)
    return twin


def check_model_is_the_twin():
    torch.manual_seed(0)
    shape = ["--d_model", "32", "--n_head", "2", "--n_layer", "2", "--d_ff", "48", "--seq_len", "16",
             "--init_std", "0.3"]
    vocab = 20
    ids = torch.randint(0, vocab, (3, 16))
    for pieces, what in (([], "replica's default model = the twin's dense model"),
                         (["--pos", "learned"], "replica with learned positions = the twin with learned_pos"),
                         (["--pos", "learned", "--norm", "layer", "--mlp", "relu"],
                          "replica GPT-2 style = the twin with learned_pos, norm = layer, mlp = relu")):
        a = gr.arguments(shape + pieces)
        replica = gr.Model(a, vocab).double()
        with torch.no_grad():  # gains away from 1 and biases away from 0, so a wrong norm placement shows
            for p in replica.parameters():
                if p.dim() == 1:
                    p.copy_(1 + 0.5 * torch.rand_like(p))
        diff = (replica(ids) - twin_with_weights_of(replica, a, vocab)(ids).logits).abs().max().item()
        check(diff < 1e-10, f"{what} (max logit difference {diff:.1e})")
        if not pieces:
            default = replica
    relu = gr.Model(gr.arguments(shape + ["--mlp", "relu"]), vocab).double()
    relu.load_state_dict({k: v for k, v in default.state_dict().items() if "w_gate" not in k})
    diff = (relu(ids) - default(ids)).abs().max().item()
    check(diff > 1e-3, f"with a ReLU MLP the logits differ (by {diff:.2f}): the comparison can fail")


def write_shard(path, text):
    """a bin/prepare-format shard of the bytes of text, one document, BOS 256 in front"""
    ids = np.array([256] + list(text.encode()), dtype="<u2")
    header = b"STSHARD\0" + np.array([1, 5], "<u4").tobytes() + np.array([257, len(ids), 2, 256, 1], "<i8").tobytes()
    with open(path, "wb") as f:
        f.write(header + ids.tobytes())


def check_bigram_backcopy():
    with tempfile.TemporaryDirectory() as d:
        path = os.path.join(d, "train.bin")
        # a, b and c are the most frequent bytes, then d and x
        write_shard(path, "aaabbbcccaabbccdaxdaxabcdaab")
        stream = gr.BigramBackcopy(path)
    check(sorted(stream.triggers.tolist()) == [ord("a"), ord("b"), ord("c")],
          f"triggers are the 3 most frequent symbols (found {[chr(t) for t in stream.triggers]})")
    x = stream.documents(64, 200, np.random.default_rng(1))
    after = stream.is_trigger[x[:, 1:-1]]
    check(np.array_equal(x[:, 2:][after], x[:, :-2][after]), "after a trigger the symbol two back returns")
    drawn = ~after
    pairs = stream.counts[x[:, 1:-1][drawn], x[:, 2:][drawn]]
    check(bool((pairs > 0).all()), "every drawn pair is a bigram of the corpus")
    check(not stream.is_trigger[x[:, 0]].any(), "no document starts with a trigger")
    w = gr.windows(stream, 8, 32, 1, np.random.default_rng(2))
    check(w.shape == (8, 33) and bool((w[:, 0] == 256).all()), "windows with bos start with BOS (id 256)")


def check_unigram_backcopy():
    stream = gr.UnigramBackcopy(V=16, alpha=0.5, trigger_prob=0.2)
    x = stream.documents(256, 400, np.random.default_rng(3))
    after = stream.is_trigger[x[:, 1:-1]]
    check(np.array_equal(x[:, 2:][after], x[:, :-2][after]), "unigram stream: after a trigger the symbol two back returns")
    placed = stream.is_trigger[x[:, 2:]][~after].mean()  # positions not copied: triggers at trigger_prob
    check(abs(placed - 0.2) < 0.01, f"unigram stream: triggers placed at 0.2 (found {placed:.4f})")
    check(int(x.max()) < stream.bos, "unigram stream: no BOS inside documents")


def check_attention_split():
    T, H = 24, 2
    attn = torch.tril(torch.ones(T, T)) / torch.arange(1, T + 1)[:, None]  # query t: 1 / (t + 1) on each key
    attn = attn.expand(4, H, T, T)
    trig = torch.zeros(4, T, dtype=torch.bool)
    trig[:, 3] = True  # query 3 only: 1/4 on key 0
    per_head, ordinary, trigger = gr.attention_on_p0(attn, trig)
    check(all(abs(h - st.chance(T)) < 1e-6 for h in per_head), "uniform attention: P0 gets chance(T) per head")
    check(abs(trigger - 0.25) < 1e-6, f"trigger queries (query 3): 1/4 on P0 (found {trigger:.4f})")
    rest = (sum(1.0 / (t + 1) for t in range(1, T)) - 0.25) / (T - 2)
    check(abs(ordinary - rest) < 1e-6, f"ordinary queries: the mean of 1/(t+1) over the others ({rest:.4f})")


check_model_is_the_twin()
check_bigram_backcopy()
check_unigram_backcopy()
check_attention_split()
sys.exit(1 if failures else 0)
