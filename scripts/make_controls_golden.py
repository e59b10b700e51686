#!/usr/bin/python3
"""Writes tests/data/hf/<family>/controls.json: the generation controls (docs/hf-reference.md,
"Generation controls") decoded by the float64 PyTorch reference of scripts/hf_reference on the
tiny checkpoints of tests/data/hf (scripts/make_hf_checkpoints.py).

    /usr/bin/python3 scripts/make_controls_golden.py            # (re)generate
    /usr/bin/python3 scripts/make_controls_golden.py --check    # verify the files reproduce

Each file holds, for the family's golden sources:
  greedy: cases of logits processors (repetition_penalty, no_repeat_ngram_size,
          min_new_tokens, suppress_tokens, bad_words_ids, singly and combined), each with the
          resolved generation settings, the sources whose every decision wins by MARGIN
          ("sources": indices), and per source the tokens (EOS included), the model log-probs
          and the model's top TOP_N log-probs per step;
  beam:   n-best cases (num_return_sequences of num_beams), each source's finished hypotheses
          best first (tokens with EOS, score, processed token log-probs);
  sampling: the next-token distribution after a fixed prefix (the first two greedy tokens of
          the first source that has three) under the warpers
          (temperature, top_k, top_p, singly and combined, and HF's default top_k 50), as
          probabilities over the vocabulary, with the plain softmax beside them.
Everything is deterministic: regenerating gives identical files.
"""

import argparse
import copy
import json
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import hf_reference as hr  # noqa: E402
from hf_reference import generate as G  # noqa: E402

FAMILIES = ["t5_v1_1", "marian", "bart"]
MARGIN = 1e-4   # every kept decision wins by at least this (float32 engines err by ~1e-6)
TOP_N = 5       # top log-probs recorded per step
NBEST = 3       # num_return_sequences of the beam cases (num_beams is the checkpoint's, 4)
MIN_SOURCES = 4  # of the 6 golden sources, at least this many must be robust in every case


def load(root, family, **over):
    return hr.load_model(os.path.join(root, family, "safetensors"), torch.float64, **over)


def frequent(outputs, skip, count):
    """The `count` most frequent tokens of the outputs (ties: lower id), none of `skip`."""
    n = {}
    for toks in outputs:
        for t in toks:
            if t not in skip:
                n[t] = n.get(t, 0) + 1
    return sorted(n, key=lambda t: (-n[t], t))[:count]


def frequent_bigram(outputs, skip):
    n = {}
    for toks in outputs:
        for a, b in zip(toks, toks[1:]):
            if a not in skip and b not in skip:
                n[(a, b)] = n.get((a, b), 0) + 1
    return list(min(n, key=lambda k: (-n[k], k)))


def greedy_cases(gc0, base):
    """(name, overrides) of the greedy cases, from the free greedy outputs `base`."""
    special = set(gc0.eos) | {gc0.start, gc0.pad}
    if gc0.forced_bos is not None:
        special.add(gc0.forced_bos)
    special |= set(gc0.forced_eos or [])
    outs = [r["tokens"] for r in base]
    sup = frequent(outs, special, 2)
    word = frequent(outs, special | set(sup), 1)
    bigram = frequent_bigram(outs, special)
    bad = [list(w) for w in gc0.bad_words]
    return [
        ("repetition_penalty", dict(repetition_penalty=1.5)),
        ("repetition_penalty_below_one", dict(repetition_penalty=0.75)),
        ("no_repeat_ngram_size", dict(no_repeat_ngram_size=2)),
        ("min_new_tokens", dict(min_new_tokens=10)),
        ("suppress_tokens", dict(suppress_tokens=sup)),
        ("bad_words", dict(bad_words_ids=bad + [word, bigram])),
        ("combined", dict(repetition_penalty=1.3, no_repeat_ngram_size=2, min_new_tokens=6,
                          suppress_tokens=sup[:1], bad_words_ids=bad + [bigram])),
    ]


# greedy cases that must change some output of the family (else the file proves nothing)
MUST_CHANGE = {"repetition_penalty", "min_new_tokens", "suppress_tokens", "bad_words", "combined"}

BEAM_CASES = [
    ("nbest", dict(num_return_sequences=NBEST)),
    ("nbest_with_processors", dict(num_return_sequences=2, repetition_penalty=1.3,
                                   no_repeat_ngram_size=2, min_new_tokens=4)),
]

# top_p values are tried in order until no cumulative mass lies within MARGIN of 1 - top_p
SAMPLING_CASES = [
    ("plain", dict(temperature=1.0, top_k=0, top_p=[1.0])),
    ("temperature", dict(temperature=0.6, top_k=0, top_p=[1.0])),
    ("top_k", dict(temperature=1.0, top_k=5, top_p=[1.0])),
    ("top_p", dict(temperature=1.0, top_k=0, top_p=[0.7, 0.72, 0.74, 0.76, 0.68, 0.66])),
    ("combined", dict(temperature=1.3, top_k=20, top_p=[0.9, 0.88, 0.86, 0.92],
                      repetition_penalty=1.5)),
    ("hf_default_top_k", dict(top_p=[1.0])),  # do_sample alone: HF's top_k 50
]


def finite(x):
    """JSON has no infinity: a margin that never applied is null."""
    return x if math.isfinite(x) else None


def settings(gc):
    return dict(gc.as_dict(), **gc.controls())


def robust(results, key):
    return [i for i, r in enumerate(results) if r[key] >= MARGIN]


def family_golden(root, family):
    with open(os.path.join(root, family, "golden.json")) as f:
        gold = json.load(f)
    sources = gold["sources"]
    model, gc0, _ = load(root, family)
    base = G.greedy(model, gc0, sources)
    out = dict(family=family, note="float64 reference (scripts/hf_reference); sources decoded one "
               "at a time; see scripts/make_controls_golden.py", min_margin=MARGIN, top_n=TOP_N,
               sources=sources, greedy=[], beam=[], sampling=[])
    for name, over in greedy_cases(gc0, base):
        _, gc, _ = load(root, family, **over)
        res = [G.greedy(model, gc, [s], top_n=TOP_N)[0] for s in sources]
        keep = robust(res, "margin")
        if len(keep) < MIN_SOURCES:
            raise SystemExit(f"{family} {name}: only {len(keep)} robust sources")
        if all(r["tokens"] == b["tokens"] for r, b in zip(res, base)) and name in MUST_CHANGE:
            raise SystemExit(f"{family} {name}: the case changes no output")
        out["greedy"].append(dict(name=name, generation=settings(gc), sources=keep, results=[
            dict(tokens=r["tokens"], logprobs=r["logprobs"], finish_reason=r["finish_reason"],
                 top_logprobs=r["top_logprobs"], margin=finite(r["margin"])) for r in res]))
    for name, over in BEAM_CASES:
        _, gc, _ = load(root, family, **over)
        res = [G.beam_search(model, gc, [s])[0] for s in sources]
        keep = robust(res, "nbest_margin")
        if len(keep) < MIN_SOURCES:
            raise SystemExit(f"{family} {name}: only {len(keep)} robust sources")
        n = gc.num_return_sequences
        out["beam"].append(dict(name=name, generation=settings(gc), sources=keep, results=[
            dict(nbest=r["nbest"][:n], nbest_margin=finite(r["nbest_margin"])) for r in res]))
    # the first source whose greedy output goes on past two tokens: they are the prefix
    src = next(i for i, g in enumerate(gold["greedy"])
               if len(g["tokens"]) >= 3 and not set(g["tokens"][:2]) & set(gc0.eos))
    prefix = gold["greedy"][src]["tokens"][:2]
    for name, over in SAMPLING_CASES:
        over = dict(over)
        for top_p in over.pop("top_p"):
            # forced_eos_token_id off: the engine's run ends right after the prefix, where it
            # would force EOS
            _, gc, _ = load(root, family, do_sample=True, num_beams=1, top_p=top_p,
                            forced_eos_token_id=None,
                            **over)
            probs, gap, plain = G.next_token_probs(model, gc, sources[src], prefix)
            if gap >= MARGIN:
                break
        else:
            raise SystemExit(f"{family} sampling {name}: every top_p lies at a boundary")
        out["sampling"].append(dict(name=name, generation=settings(gc), source_index=src,
                                    prefix=prefix, probs=probs.tolist(), plain_probs=plain.tolist(),
                                    boundary_margin=finite(gap)))
    return out


def text(g):
    """One case a line: reviewable diffs, deterministic (repr floats round-trip)."""
    lines = ["{"]
    items = list(g.items())
    for k, (key, v) in enumerate(items):
        end = "," if k < len(items) - 1 else ""
        if isinstance(v, list) and v and isinstance(v[0], dict):
            body = ",\n".join("    " + json.dumps(x, sort_keys=True) for x in v)
            lines.append(f'  "{key}": [\n{body}\n  ]{end}')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(v)}{end}")
    return "\n".join(lines) + "\n}\n"


def hand_checks(fails):
    """The new processors and the warpers on hand-made rows (HF's definitions)."""
    base = dict(model_type="bart", eos_token_id=2, decoder_start_token_id=0, pad_token_id=1)

    def expect(cond, what):
        if not cond:
            fails.append(what)
            print("FAIL:", what)

    gc = G.GenConfig(base, dict(repetition_penalty=2.0))
    row = torch.tensor([[1.0, -1.0, 4.0, -3.0, 5.0]], dtype=torch.float64)
    got = G.process(gc, [[0, 1, 1, 3]], row)[0].tolist()
    expect(got == [0.5, -2.0, 4.0, -6.0, 5.0], f"repetition_penalty: {got}")
    gc = G.GenConfig(base, dict(min_new_tokens=2, min_length=9))
    expect(gc.min_length == 3, "min_new_tokens takes precedence over min_length")
    gc = G.GenConfig(base, dict(suppress_tokens=[3, 4]))
    got = G.process(gc, [[0]], torch.zeros(1, 5, dtype=torch.float64))[0].tolist()
    expect(got == [0, 0, 0, -math.inf, -math.inf], f"suppress_tokens: {got}")
    scores = torch.tensor([[1.0, 3.0, 2.0, 0.0]], dtype=torch.float64)
    gc = G.GenConfig(base, dict(do_sample=True, top_k=2, temperature=2.0))
    got, _ = G.warp(gc, scores)
    expect(got[0].tolist() == [-math.inf, 1.5, 1.0, -math.inf], f"temperature + top_k: {got}")
    # softmax(1, 3, 2, 0) = .087 .644 .237 .032: top_p .7 keeps 3 and 2 (.644 < .7), .6 only 3
    gc = G.GenConfig(base, dict(do_sample=True, top_k=0, top_p=0.7))
    got, _ = G.warp(gc, scores)
    expect(torch.isfinite(got[0]).tolist() == [False, True, True, False], f"top_p 0.7: {got}")
    gc = G.GenConfig(base, dict(do_sample=True, top_k=0, top_p=0.6))
    got, _ = G.warp(gc, scores)
    expect(torch.isfinite(got[0]).tolist() == [False, True, False, False], f"top_p 0.6: {got}")


def close(a, b, tol=1e-9):
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(close(a[k], b[k], tol) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(close(x, y, tol) for x, y in zip(a, b))
    if a is None or b is None:
        return a is b
    if isinstance(a, float) or isinstance(b, float):
        return (math.isinf(a) and a == b) or abs(a - b) <= tol
    return a == b


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    ap.add_argument("--root", default=os.path.join(here, "tests", "data", "hf"))
    ap.add_argument("--check", action="store_true")
    a = ap.parse_args()
    torch.set_num_threads(1)
    fails = []
    hand_checks(fails)
    for family in FAMILIES:
        g = family_golden(a.root, family)
        path = os.path.join(a.root, family, "controls.json")
        if a.check:
            with open(path) as f:
                if not close(json.load(f), json.loads(text(g))):
                    fails.append(f"{path} does not reproduce")
                    print("FAIL:", path, "does not reproduce")
        else:
            with open(path, "w") as f:
                f.write(text(g))
        print(f"{family}: " + ", ".join(f"{c['name']} {len(c['sources'])}/6" for c in g["greedy"] + g["beam"]))
    if fails:
        print(f"{len(fails)} check(s) failed")
        return 1
    print("all checks passed" if a.check else "written")
    return 0


if __name__ == "__main__":
    sys.exit(main())
