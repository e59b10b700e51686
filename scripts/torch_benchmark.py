#!/usr/bin/python3
"""PyTorch peer benchmark on one of our model directories.

    LD_PRELOAD=$PWD/build/sgemm_shim.so /usr/bin/python3 scripts/torch_benchmark.py \\
        --model_dir /tmp/attnserve-base --threads 1,2 --json

Loads the directory into torch.nn Transformer modules (scripts/attnserve_export.py), so the
weights are exactly those the C++ engine serves, and measures under torch.inference_mode():
  encoder  sequences/s: batch B of random sources (ids >= 3, no padding), source length 64
  greedy   tokens/s: batch B, source length 32, exactly 32 new tokens each (EOS ignored);
           the time includes encoding; nn.TransformerDecoder has no KV cache, so every step
           recomputes the decoder over the whole prefix (this is what stock PyTorch does)
for each thread count and batch size, reporting the median of --repeats runs (after one
warm-up run), with OMP_WAIT_POLICY=passive GOMP_SPINCOUNT=1000 (the attnserve server's own
waiting) unless told otherwise (see ensure_omp_waiting). With --json the last stdout line is one JSON object for wrapper scripts.

Debian's torch does its matrix products in the netlib reference BLAS unless the sgemm shim is
preloaded (scripts/build_sgemm_shim.sh); the script says which one it measured. Without the
shim, base-sized runs are very slow: use --repeats 1 and fewer batch sizes.
"""

import argparse
import json
import os
import statistics
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import attnserve_export as ax  # noqa: E402

SHIM_NAME = "sgemm_shim"


def shim_path():
    """Path of the preloaded sgemm shim if it is mapped into this process, else None."""
    with open("/proc/self/maps") as f:
        for line in f:
            if SHIM_NAME in line:
                return line.split()[-1]
    return None


def timed(fn, repeats):
    fn()  # warm-up (oneDNN JIT, allocator)
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), times


def ints(text):
    return [int(x) for x in text.split(",") if x]


def ensure_omp_waiting(policy, spincount):
    """libgomp reads OMP_WAIT_POLICY and GOMP_SPINCOUNT when it is loaded, which is at process
    start when the shim (linked to libdnnl -> libgomp) is preloaded: re-exec with them set. On a
    shared 2-core machine the default long spinning makes 2-thread runs 10-100x slower whenever
    another process competes for a core (measured: 220 ms instead of 1.4 ms per tiny encoder
    call). The defaults are the attnserve server's own (engine/openmp_waiting.h), so both sides
    of a comparison wait alike."""
    wanted = {"OMP_WAIT_POLICY": policy, "GOMP_SPINCOUNT": spincount}
    changed = False
    for name, value in wanted.items():
        if value != "keep" and os.environ.get(name, "").lower() != value:
            os.environ[name] = value
            changed = True
    if changed:
        os.execv(sys.executable, [sys.executable] + sys.argv)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model_dir", required=True)
    ap.add_argument("--threads", default="1,2", help="comma-separated torch thread counts")
    ap.add_argument("--batch_sizes", default="1,32", help="comma-separated batch sizes")
    ap.add_argument("--encoder_src_len", type=int, default=64)
    ap.add_argument("--greedy_src_len", type=int, default=32)
    ap.add_argument("--new_tokens", type=int, default=32)
    ap.add_argument("--repeats", type=int, default=5, help="timed runs per measurement")
    ap.add_argument("--skip", default="", help="comma-separated: encoder,greedy")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON line at the end")
    ap.add_argument("--quantize_dynamic", action="store_true",
                    help="torch.quantization.quantize_dynamic on every nn.Linear (int8 weights, "
                         "activations quantized per call): PyTorch's own int8, the peer of "
                         "attnserve's --compute_type=int8. nn.MultiheadAttention's fused q/k/v "
                         "projection is not an nn.Linear and stays float32")
    ap.add_argument("--omp_wait_policy", default="passive", choices=["passive", "active", "keep"],
                    help="OMP_WAIT_POLICY to run with (re-executes itself); keep = as inherited")
    ap.add_argument("--gomp_spincount", default="1000",
                    help="GOMP_SPINCOUNT to run with (re-executes itself); keep = as inherited")
    args = ap.parse_args()
    ensure_omp_waiting(args.omp_wait_policy, args.gomp_spincount)

    shim = shim_path()
    print(f"sgemm shim: {'loaded (' + shim + ')' if shim else 'NOT loaded (netlib reference BLAS)'}")
    print(f"torch {torch.__version__}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '')!r}, "
          f"GOMP_SPINCOUNT={os.environ.get('GOMP_SPINCOUNT', '')!r}, "
          f"load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs")
    model = ax.load(args.model_dir)
    for p in model.parameters():
        p.requires_grad_(False)
    cfg = model.cfg
    if args.quantize_dynamic:
        engines = torch.backends.quantized.supported_engines
        torch.backends.quantized.engine = "onednn" if "onednn" in engines else engines[0]
        model = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        model.cfg = cfg
        # torch 1.13's encoder-layer fast path reads linear.weight as a tensor, which a
        # dynamically quantized Linear has as a method: keep those layers on the plain path
        # ("training", which with dropout 0 computes the same).
        for m in model.modules():
            if isinstance(m, torch.nn.TransformerEncoderLayer):
                m.train()
        print(f"quantize_dynamic: int8 nn.Linear on the {torch.backends.quantized.engine} engine")
    print(f"model {args.model_dir}: d_model {cfg['d_model']}, heads {cfg['num_heads']}, layers "
          f"{cfg['encoder_layers']}+{cfg['decoder_layers']}, ffn {cfg['ffn_dim']}, vocab "
          f"{cfg['vocab_size']}, {cfg['norm_placement']}-norm, {cfg['activation']}")
    skip = set(args.skip.split(",")) - {""}
    gen = torch.Generator().manual_seed(args.seed)
    results = []
    for threads in ints(args.threads):
        torch.set_num_threads(threads)
        for batch in ints(args.batch_sizes):
            if "encoder" not in skip:
                src = torch.randint(3, cfg["vocab_size"], (batch, args.encoder_src_len),
                                    generator=gen)
                with torch.inference_mode():
                    med, times = timed(lambda: model.encode(src), args.repeats)
                r = dict(bench="encoder", threads=threads, batch=batch,
                         src_len=args.encoder_src_len, median_s=med, seq_per_s=batch / med,
                         times_s=times)
                results.append(r)
                print(f"threads {threads} batch {batch:3d} encoder (src {args.encoder_src_len}): "
                      f"{r['seq_per_s']:9.1f} seq/s  (median {med * 1e3:.1f} ms of {args.repeats})",
                      flush=True)
            if "greedy" not in skip:
                sources = torch.randint(3, cfg["vocab_size"], (batch, args.greedy_src_len),
                                        generator=gen).tolist()

                def run():
                    out = ax.greedy(model, sources, args.new_tokens, ignore_eos=True)
                    assert all(len(o["output_ids"]) == args.new_tokens for o in out)

                with torch.inference_mode():
                    med, times = timed(run, args.repeats)
                r = dict(bench="greedy", threads=threads, batch=batch,
                         src_len=args.greedy_src_len, new_tokens=args.new_tokens, median_s=med,
                         tokens_per_s=batch * args.new_tokens / med, times_s=times)
                results.append(r)
                print(f"threads {threads} batch {batch:3d} greedy (src {args.greedy_src_len}, "
                      f"{args.new_tokens} new): {r['tokens_per_s']:9.1f} tokens/s  (median "
                      f"{med:.3f} s of {args.repeats})", flush=True)
    if args.json:
        print(json.dumps({"tool": "torch_benchmark", "model_dir": args.model_dir,
                          "quantize_dynamic": args.quantize_dynamic,
                          "torch": torch.__version__, "sgemm_shim": bool(shim),
                          "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY", ""),
                          "gomp_spincount": os.environ.get("GOMP_SPINCOUNT", ""),
                          "load_average_end": os.getloadavg()[0],
                          "repeats": args.repeats, "results": results}))


if __name__ == "__main__":
    main()
