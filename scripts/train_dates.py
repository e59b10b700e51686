"""Trains the bundled date-normalisation model and exports it to models/dates.

Dev tool (Debian's /usr/bin/python3 with python3-torch 1.13; see docs/dates-model.md). Run it
with the sgemm shim, or Debian's reference BLAS makes it ~15x slower:

    scripts/build_sgemm_shim.sh build/sgemm_shim.so
    LD_PRELOAD=$PWD/build/sgemm_shim.so /usr/bin/python3 scripts/train_dates.py

Architecture: scripts/attnserve_export.py's EncoderDecoder (torch.nn Transformer layers), so
the export is exact: d_model 128, 4 heads, 2+2 layers, ffn 512, post-norm without final norms,
ReLU, interleaved sinusoidal positions, scaled embeddings, one shared embedding tied to the
output, character vocabulary from scripts/dates_data.py, EOS appended to every source.

Training: teacher forcing on fresh random renderings of training dates (scripts/dates_data.py;
validation and test dates never appear), batches of 64 of similar source lengths, Adam
(lr 2e-3, linear warm-up over 200 steps, linear decay to 5% at step 2600), gradient clipping 1.
Every --eval_every steps, greedy exact match (computed in one teacher-forced pass, which is
equivalent) on --valid_n fixed renderings of the validation dates; it stops when that reaches
--target (else at --max_steps, or at the --max_minutes safety cap),
exports, then loads the exported directory back and reports greedy exact match on the whole
held-out file (tests/data/dates_heldout.tsv); it exits non-zero below --require.
"""

import argparse
import math
import os
import random
import sys
import time

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnserve_export as ax  # noqa: E402
import dates_data as dd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXAMPLE = ("Monday, 23 November 2026", "2026-11-23")


def reexec_passive():
    """libgomp reads OMP_WAIT_POLICY at load time: set it and restart the process."""
    if os.environ.get("OMP_WAIT_POLICY", "").lower() != "passive":
        os.environ["OMP_WAIT_POLICY"] = "passive"
        os.execv(sys.executable, [sys.executable] + sys.argv)


def shim_loaded():
    with open("/proc/self/maps") as f:
        return "sgemm_shim" in f.read()


def make_config(vocab_size, max_positions):
    return ax.make_config(
        d_model=128, num_heads=4, encoder_layers=2, decoder_layers=2, ffn_dim=512,
        vocab_size=vocab_size, max_positions=max_positions, activation="relu",
        norm_placement="post", layer_norm_eps=1e-5, scale_embedding=True,
        positional_encoding="sinusoidal", tie_output_embedding=True,
        pad_id=dd.PAD_ID, bos_id=dd.BOS_ID, eos_id=dd.EOS_ID, decoder_start_id=dd.BOS_ID,
        add_eos_to_source=True)


def init_for_training(model, seed):
    """Xavier-uniform matrices (as torch.nn.Transformer does; nn.TransformerEncoder otherwise
    starts every layer as a copy of the first), zero biases, unit LayerNorms, embeddings
    N(0, d^-0.5) (they are scaled by sqrt(d); N(0, 1) would swamp the positions)."""
    g = torch.Generator().manual_seed(seed)
    d = model.cfg["d_model"]
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("_embed.weight"):
                p.copy_(torch.randn(p.shape, generator=g) * d ** -0.5)
            elif "norm" in name:
                p.fill_(1.0 if name.endswith("weight") else 0.0)
            elif p.dim() > 1:
                bound = math.sqrt(6.0 / (p.shape[0] + p.shape[1]))
                p.copy_((torch.rand(p.shape, generator=g) * 2 - 1) * bound)
            else:
                p.zero_()


def pad_batch(seqs, pad_id):
    lengths = [len(s) for s in seqs]
    out = torch.full((len(seqs), max(lengths)), pad_id, dtype=torch.long)
    for i, s in enumerate(seqs):
        out[i, :len(s)] = torch.as_tensor(s, dtype=torch.long)
    return out, lengths


class Batches:
    """Endless seeded batches of (source ids, target ids) from training dates. Draws
    `pool` batches' worth of examples at a time, sorts them by source length and cuts them
    into batches (less padding), in shuffled order."""

    def __init__(self, dates, vocab, batch_size, seed, pool=16):
        self.dates, self.vocab, self.bs, self.pool = dates, vocab, batch_size, pool
        self.rng = random.Random(seed)
        self.queue = []

    def _refill(self):
        ex = []
        for _ in range(self.bs * self.pool):
            d = self.rng.choice(self.dates)
            ex.append((dd.encode_source(dd.render(d, self.rng), self.vocab),
                       dd.encode_source(dd.iso(d), self.vocab)))  # target + EOS
        ex.sort(key=lambda e: len(e[0]))
        batches = [ex[i:i + self.bs] for i in range(0, len(ex), self.bs)]
        self.rng.shuffle(batches)
        self.queue = batches

    def next(self):
        if not self.queue:
            self._refill()
        b = self.queue.pop()
        src, src_len = pad_batch([e[0] for e in b], dd.PAD_ID)
        tgt_out, _ = pad_batch([e[1] for e in b], dd.PAD_ID)
        tgt_in = torch.cat([torch.full((len(b), 1), dd.BOS_ID, dtype=torch.long),
                            tgt_out[:, :-1]], dim=1)
        return src, src_len, tgt_in, tgt_out


def exact_match(model, pairs, vocab, batch=500, show_errors=0):
    """Greedy (attnserve_export.greedy, the reference decoder) exact match over (source,
    target) pairs; a hit must also stop with EOS."""
    model.eval()
    hits, errors = 0, []
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        res = ax.greedy(model, [dd.encode_source(s, vocab) for s, _ in chunk], max_new_tokens=16)
        for (s, t), r in zip(chunk, res):
            out = dd.decode_ids(r["output_ids"], vocab)
            if out == t and r["finish_reason"] == "eos":
                hits += 1
            else:
                errors.append((s, t, out, r["finish_reason"]))
    for e in errors[:show_errors]:
        print(f"  miss: {e[0]!r} -> {e[2]!r} (want {e[1]}, {e[3]})")
    return hits / len(pairs), errors


@torch.no_grad()
def forced_exact_match(model, pairs, vocab, batch=500):
    """Greedy exact match computed in one teacher-forced pass: greedy decoding yields exactly
    the target (then EOS) iff the arg-max at every teacher-forced position is the next target
    token, because the greedy prefixes are then the target's prefixes. (Arg-max ties go to
    the lowest id, as in greedy.) Much cheaper than decoding step by step."""
    model.eval()
    hits = 0
    for i in range(0, len(pairs), batch):
        chunk = pairs[i:i + batch]
        src, src_len = pad_batch([dd.encode_source(s, vocab) for s, _ in chunk], dd.PAD_ID)
        tgt_out, _ = pad_batch([dd.encode_source(t, vocab) for _, t in chunk], dd.PAD_ID)
        tgt_in = torch.cat([torch.full((len(chunk), 1), dd.BOS_ID, dtype=torch.long),
                            tgt_out[:, :-1]], dim=1)
        pred = model(src, tgt_in, src_len).argmax(-1)
        ok = (pred == tgt_out) | (tgt_out == dd.PAD_ID)
        hits += int(ok.all(dim=1).sum())
    return hits / len(pairs)


def read_tsv(path):
    pairs = []
    with open(path, encoding="utf-8", newline="") as f:
        for line in f.read().split("\n"):
            if line:
                src, tgt = line.split("\t")
                pairs.append((src, tgt))
    return pairs


def main():
    ap = argparse.ArgumentParser(description="train and export models/dates")
    ap.add_argument("--out", default=os.path.join(ROOT, "models", "dates"))
    ap.add_argument("--heldout", default=os.path.join(ROOT, "tests", "data",
                                                      "dates_heldout.tsv"))
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch_size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=200)
    ap.add_argument("--decay_steps", type=int, default=2600,
                    help="linear decay of the learning rate until this step (0: constant)")
    ap.add_argument("--lr_floor", type=float, default=0.05)
    ap.add_argument("--label_smoothing", type=float, default=0.0)
    ap.add_argument("--eval_every", type=int, default=200)
    ap.add_argument("--valid_n", type=int, default=1000)
    ap.add_argument("--target", type=float, default=0.995,
                    help="stop when validation exact match reaches this")
    ap.add_argument("--require", type=float, default=0.99,
                    help="exit non-zero if held-out exact match is below this")
    ap.add_argument("--max_minutes", type=float, default=8.0,
                    help="wall-time cap (a run it stops is not reproducible step for step)")
    ap.add_argument("--max_steps", type=int, default=3000)
    ap.add_argument("--max_positions", type=int, default=64)
    ap.add_argument("--allow_no_shim", action="store_true")
    args = ap.parse_args()
    reexec_passive()

    if not shim_loaded():
        msg = ("the sgemm shim is not loaded: Debian's torch will be ~15x slower "
               "(LD_PRELOAD=$PWD/build/sgemm_shim.so)")
        if not args.allow_no_shim:
            sys.exit("error: " + msg + "; --allow_no_shim to go on anyway")
        print("warning: " + msg)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    print(f"torch {torch.__version__}, threads {torch.get_num_threads()}, "
          f"OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY')}, shim {shim_loaded()}, "
          f"load average {os.getloadavg()[0]:.2f}")

    vocab = dd.vocabulary()
    dates = dd.all_dates()
    train_dates = [d for d in dates if dd.split(d) == "train"]
    valid_dates = [d for d in dates if dd.split(d) == "valid"]
    vrng = random.Random(args.seed + 1000)
    valid = [(dd.render(d, vrng), dd.iso(d))
             for d in (vrng.choice(valid_dates) for _ in range(args.valid_n))]
    if dd.MAX_SOURCE_CHARS + 1 > args.max_positions:
        sys.exit("max_positions too small for the longest source")
    print(f"vocabulary {len(vocab)} tokens; dates: {len(train_dates)} train, "
          f"{len(valid_dates)} valid ({len(valid)} validation renderings)")

    cfg = make_config(len(vocab), args.max_positions)
    model = ax.EncoderDecoder(cfg, shared_embeddings=True, final_norm=False)
    init_for_training(model, args.seed)
    n_params = sum(p.numel() for p in model.parameters())
    print(f"model: {n_params} parameters")

    opt = torch.optim.Adam(model.parameters(), lr=args.lr, betas=(0.9, 0.98), eps=1e-9)

    def lr_factor(step):  # linear warm-up, then linear decay to --lr_floor at --decay_steps
        f = min(1.0, (step + 1) / args.warmup)
        if args.decay_steps > args.warmup and step > args.warmup:
            f *= max(args.lr_floor,
                     1.0 - (step - args.warmup) / (args.decay_steps - args.warmup))
        return f

    sched = torch.optim.lr_scheduler.LambdaLR(opt, lr_factor)
    batches = Batches(train_dates, vocab, args.batch_size, args.seed)

    t0 = time.time()
    step, loss_sum, loss_n, best = 0, 0.0, 0, 0.0
    eval_time = 0.0
    while True:
        model.train()
        src, src_len, tgt_in, tgt_out = batches.next()
        logits = model(src, tgt_in, src_len)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), tgt_out.reshape(-1),
                               ignore_index=dd.PAD_ID, label_smoothing=args.label_smoothing)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        loss_sum += float(loss)
        loss_n += 1
        elapsed = time.time() - t0
        stop = None
        if step % args.eval_every == 0:
            te = time.time()
            acc = forced_exact_match(model, valid, vocab)
            eval_time += time.time() - te
            elapsed = time.time() - t0
            print(f"step {step:5d}  {elapsed:6.1f}s  {step * args.batch_size:7d} ex  loss {loss_sum / loss_n:.4f}  "
                  f"valid exact {acc:.4f}  lr {sched.get_last_lr()[0]:.2e}", flush=True)
            loss_sum, loss_n = 0.0, 0
            if acc >= args.target:
                stop = f"validation exact match {acc:.4f} >= {args.target}"
        if stop is None and elapsed > args.max_minutes * 60:
            stop = f"time cap {args.max_minutes} min"
        if stop is None and step >= args.max_steps:
            stop = f"step cap {args.max_steps}"
        if stop:
            break
    train_s = time.time() - t0
    print(f"stopped after {step} steps ({step * args.batch_size} examples), {train_s:.1f}s "
          f"wall ({eval_time:.1f}s of it validation): {stop}; load average "
          f"{os.getloadavg()[0]:.2f}")

    ax.export(model, cfg, args.out, vocab=vocab,
              extra_config={"tokenizer": "char", "vocab_file": "vocab.txt"})
    size = os.path.getsize(os.path.join(args.out, "model.safetensors"))
    print(f"exported to {args.out} (model.safetensors {size} bytes)")

    # Everything below uses only the exported directory.
    loaded = ax.load(args.out)
    vocab2 = dd.read_vocab(os.path.join(args.out, "vocab.txt"))
    assert vocab2 == vocab, "vocab.txt does not read back verbatim"
    pairs = read_tsv(args.heldout)
    te = time.time()
    acc, errors = exact_match(loaded, pairs, vocab2, show_errors=20)
    print(f"held-out {args.heldout}: exact match {acc:.4f} ({len(pairs) - len(errors)}/"
          f"{len(pairs)}), greedy in {time.time() - te:.1f}s")
    ex_acc, _ = exact_match(loaded, [EXAMPLE], vocab2, show_errors=1)
    print(f"example {EXAMPLE[0]!r} (date split: {dd.split(EXAMPLE[1])}): "
          f"{'ok' if ex_acc == 1.0 else 'WRONG'}")
    if acc < args.require or ex_acc < 1.0:
        sys.exit(f"error: held-out exact match {acc:.4f} < {args.require} or the example failed")


if __name__ == "__main__":
    main()
