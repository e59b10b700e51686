// LD_PRELOAD shim: forwards the Fortran BLAS entry points sgemm_ and sgemv_ to oneDNN's
// dnnl_sgemm.
//
// Why: Debian's python3-torch does its fp32 matrix products in the netlib reference BLAS
// (libblas.so.3, ~5 GFLOP/s, single-threaded). oneDNN's sgemm is ~30x faster and honours the
// OpenMP thread count that torch.set_num_threads() sets. Dev tools only; the engine never
// uses this.
//
// Layout: Fortran BLAS is column-major, dnnl_sgemm is row-major. A column-major m x n matrix
// with leading dimension ld is the same memory as a row-major n x m matrix with the same ld,
// so C = op(A) op(B) (column-major) is C^T = op(B)^T op(A)^T (row-major): swap the operands,
// swap m and n, keep the trans flags and leading dimensions.
//
// Anything dnnl_sgemm rejects (or a vector stride it cannot express) falls back to the next
// definition of the symbol (the real BLAS) found with dlsym(RTLD_NEXT), so results never
// depend on the shim's coverage. Set SGEMM_SHIM_VERBOSE=1 to print call counts at exit.
//
// Build: scripts/build_sgemm_shim.sh [OUT.so]

#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "oneapi/dnnl/dnnl.h"

typedef void (*sgemm_fn)(const char*, const char*, const int*, const int*, const int*,
                         const float*, const float*, const int*, const float*, const int*,
                         const float*, float*, const int*);
typedef void (*sgemv_fn)(const char*, const int*, const int*, const float*, const float*,
                         const int*, const float*, const int*, const float*, float*,
                         const int*);

static long g_gemm_calls, g_gemm_fallbacks, g_gemv_calls, g_gemv_fallbacks;
static int g_verbose = -1;

static int verbose(void) {
  if (g_verbose < 0) {
    const char* v = getenv("SGEMM_SHIM_VERBOSE");
    g_verbose = (v != NULL && v[0] != '\0' && v[0] != '0');
  }
  return g_verbose;
}

__attribute__((destructor)) static void report(void) {
  if (verbose()) {
    fprintf(stderr,
            "sgemm_shim: sgemm_ calls %ld (fallbacks %ld), sgemv_ calls %ld (fallbacks %ld)\n",
            g_gemm_calls, g_gemm_fallbacks, g_gemv_calls, g_gemv_fallbacks);
  }
}

static char upper(char c) { return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c; }

static void* next_symbol(const char* name) {
  void* f = dlsym(RTLD_NEXT, name);
  if (f == NULL) {
    fprintf(stderr, "sgemm_shim: no fallback for %s: %s\n", name, dlerror());
    abort();
  }
  return f;
}

// The trailing hidden string-length arguments of the gfortran ABI are ignored (harmless in
// the C calling convention).
void sgemm_(const char* transa, const char* transb, const int* m, const int* n, const int* k,
            const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
            const float* beta, float* c, const int* ldc) {
  __atomic_fetch_add(&g_gemm_calls, 1, __ATOMIC_RELAXED);
  if (*m == 0 || *n == 0) return;  // nothing to compute, as in reference BLAS
  const char ta = upper(*transa), tb = upper(*transb);
  if (*k > 0 && (ta == 'N' || ta == 'T') && (tb == 'N' || tb == 'T')) {
    // Row-major: C^T[n x m] = op(B)^T[n x k] * op(A)^T[k x m].
    dnnl_status_t st = dnnl_sgemm(tb, ta, *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c, *ldc);
    if (st == dnnl_success) return;
  }
  // k == 0 (C = beta*C), conjugate-transpose flags ('C' == 'T' for reals, rare) or a rejected
  // argument: let the real BLAS do it (it also reports argument errors the BLAS way).
  __atomic_fetch_add(&g_gemm_fallbacks, 1, __ATOMIC_RELAXED);
  static sgemm_fn next = NULL;
  if (next == NULL) next = (sgemm_fn)next_symbol("sgemm_");
  next(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
}

// y = alpha * op(A) x + beta * y with A column-major m x n. Column-major A is the row-major
// n x m matrix R (leading dimension lda); x and y are row-major K x 1 / M x 1 matrices whose
// "leading dimension" is the vector stride.
//   op = N: y[m] = R^T x  ->  dnnl_sgemm('T', 'N', M=m, N=1, K=n, R, lda, x, incx, y, incy)
//   op = T: y[n] = R x    ->  dnnl_sgemm('N', 'N', M=n, N=1, K=m, R, lda, x, incx, y, incy)
void sgemv_(const char* trans, const int* m, const int* n, const float* alpha, const float* a,
            const int* lda, const float* x, const int* incx, const float* beta, float* y,
            const int* incy) {
  __atomic_fetch_add(&g_gemv_calls, 1, __ATOMIC_RELAXED);
  const char t = upper(*trans);
  if (*m > 0 && *n > 0 && *incx > 0 && *incy > 0 && (t == 'N' || t == 'T' || t == 'C')) {
    dnnl_status_t st;
    if (t == 'N') {
      st = dnnl_sgemm('T', 'N', *m, 1, *n, *alpha, a, *lda, x, *incx, *beta, y, *incy);
    } else {
      st = dnnl_sgemm('N', 'N', *n, 1, *m, *alpha, a, *lda, x, *incx, *beta, y, *incy);
    }
    if (st == dnnl_success) return;
  }
  __atomic_fetch_add(&g_gemv_fallbacks, 1, __ATOMIC_RELAXED);
  static sgemv_fn next = NULL;
  if (next == NULL) next = (sgemv_fn)next_symbol("sgemv_");
  next(trans, m, n, alpha, a, lda, x, incx, beta, y, incy);
}
