#!/usr/bin/env bash
# Builds the LD_PRELOAD shim that forwards Fortran sgemm_/sgemv_ to oneDNN (see sgemm_shim.c).
#   scripts/build_sgemm_shim.sh                 -> build/sgemm_shim.so (under the repo root)
#   scripts/build_sgemm_shim.sh OUT.so          -> OUT.so
#   scripts/build_sgemm_shim.sh --check [OUT]   -> build, then compare torch with and without
#                                                  the shim (every transpose combination, strided
#                                                  operands, alpha/beta, gemv) and time sgemm
# Then: LD_PRELOAD=$PWD/build/sgemm_shim.so /usr/bin/python3 scripts/torch_benchmark.py ...
# Needs a C compiler and libdnnl-dev (both installed by scripts/setup.sh).
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(dirname "$here")"
check=0
if [[ "${1:-}" == "--check" ]]; then check=1; shift; fi
out="${1:-$root/build/sgemm_shim.so}"
mkdir -p "$(dirname "$out")"
out="$(cd "$(dirname "$out")" && pwd)/$(basename "$out")"
${CC:-cc} -O2 -Wall -Wextra -shared -fPIC -o "$out" "$here/sgemm_shim.c" -ldnnl -ldl
echo "built $out"
[[ $check == 1 ]] || exit 0

py=/usr/bin/python3
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/check.py" <<'PY'
# Runs a fixed set of fp32 products and saves them (mode "run"), or compares two such runs
# against each other and against float64 (mode "compare"). float64 goes through dgemm_, which
# the shim does not touch, so it is an independent reference.
import sys, time, torch

def cases():
    g = torch.Generator().manual_seed(1234)
    r = lambda *s: torch.randn(*s, generator=g)
    out = {}
    m, k, n = 37, 53, 29
    A, B = r(m, k), r(k, n)
    At, Bt = r(k, m).t(), r(n, k).t()          # transposed storage -> the other trans flag
    for an, a in (("N", A), ("T", At)):
        for bn, b in (("N", B), ("T", Bt)):
            out[f"mm_{an}{bn}"] = (a, b, torch.mm(a, b), torch.mm(a.double(), b.double()))
    # Leading dimensions larger than the matrix (column slices of wider matrices).
    Aw, Bw = r(m, k + 11)[:, 3:3 + k], r(k, n + 7)[:, 2:2 + n]
    out["mm_ld"] = (Aw, Bw, Aw @ Bw, Aw.double() @ Bw.double())
    Cw = r(m, n + 5)[:, 1:1 + n]
    out["mm_ld_T"] = (Aw, Cw, Aw.t() @ Cw, Aw.double().t() @ Cw.double())
    # alpha / beta through addmm, and beta = 0 over a NaN output (BLAS must ignore C).
    C = r(m, n)
    out["addmm"] = (A, B, torch.addmm(C, A, B, beta=0.5, alpha=-1.5),
                    torch.addmm(C.double(), A.double(), B.double(), beta=0.5, alpha=-1.5))
    nan = torch.full((m, n), float("nan"))
    torch.mm(A, B, out=nan)
    out["mm_nan_out"] = (A, B, nan, A.double() @ B.double())
    # Linear layers (what the models use), batched matmul, vector products (sgemv_).
    x, W, bias = r(4, 9, 64), r(96, 64), r(96)
    out["linear3d"] = (x, W, torch.nn.functional.linear(x, W, bias),
                       torch.nn.functional.linear(x.double(), W.double(), bias.double()))
    x1 = r(1, 64)
    out["linear_row"] = (x1, W, torch.nn.functional.linear(x1, W, bias),
                         torch.nn.functional.linear(x1.double(), W.double(), bias.double()))
    q, kk = r(6, 10, 16), r(6, 12, 16)
    out["bmm_T"] = (q, kk, q @ kk.transpose(1, 2), q.double() @ kk.double().transpose(1, 2))
    v, vs, vm = r(k), r(2 * k)[::2], r(m)
    out["mv_N"] = (A, v, A @ v, A.double() @ v.double())
    out["mv_T"] = (A, vm, A.t() @ vm, A.double().t() @ vm.double())
    out["mv_strided"] = (A, vs, A @ vs, A.double() @ vs.double())
    out["mv_Tstored"] = (At, v, At @ v, At.double() @ v.double())
    y = r(m)
    out["addmv"] = (A, v, torch.addmv(y, A, v, beta=2.0, alpha=0.25),
                    torch.addmv(y.double(), A.double(), v.double(), beta=2.0, alpha=0.25))
    return {name: (res, ref) for name, (_, _, res, ref) in out.items()}

def gflops(threads):
    torch.set_num_threads(threads)
    res = {}
    for (m, k, n) in ((64, 512, 512), (256, 512, 2048), (512, 512, 512)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        torch.mm(a, b)
        reps, best = 0, float("inf")
        t_end = time.perf_counter() + 1.0
        while reps < 3 or (time.perf_counter() < t_end and reps < 50):
            t0 = time.perf_counter(); torch.mm(a, b); best = min(best, time.perf_counter() - t0)
            reps += 1
        res[f"{m}x{k}x{n}"] = 2.0 * m * k * n / best / 1e9
    return res

if sys.argv[1] == "run":
    torch.set_num_threads(1)
    torch.save(cases(), sys.argv[2])
    perf = {t: gflops(t) for t in (1, 2)}
    torch.save(perf, sys.argv[2] + ".perf")
else:
    shim, ref = torch.load(sys.argv[2]), torch.load(sys.argv[3])
    ok = True
    for name in shim:
        a, a64 = shim[name]
        b, _ = ref[name]
        scale = b.abs().max().item() + 1e-30
        d_ref = (a - b).abs().max().item() / scale
        d64 = (a.double() - a64).abs().max().item() / scale if a64 is not None else 0.0
        bad = not (d_ref < 1e-5 and d64 < 1e-5 and torch.isfinite(a).all())
        ok &= not bad
        print(f"  {name:12s} shape {str(tuple(a.shape)):14s} rel.diff vs no-shim {d_ref:.1e}"
              f"  vs float64 {d64:.1e}  {'FAIL' if bad else 'ok'}")
    ps, pr = torch.load(sys.argv[2] + ".perf"), torch.load(sys.argv[3] + ".perf")
    for t in ps:
        for shape in ps[t]:
            print(f"  sgemm {shape:14s} threads {t}: {pr[t][shape]:6.1f} GFLOP/s without shim, "
                  f"{ps[t][shape]:6.1f} with shim ({ps[t][shape] / pr[t][shape]:.0f}x)")
    print("check:", "PASS" if ok else "FAIL")
    sys.exit(0 if ok else 1)
PY
SGEMM_SHIM_VERBOSE=1 LD_PRELOAD="$out" "$py" "$tmp/check.py" run "$tmp/shim.pt"
"$py" "$tmp/check.py" run "$tmp/ref.pt"
LD_PRELOAD="$out" "$py" -c \
  "import torch; print('shim mapped in process:', any('$(basename "$out")' in l for l in open('/proc/self/maps')))"
"$py" "$tmp/check.py" compare "$tmp/shim.pt" "$tmp/ref.pt"
