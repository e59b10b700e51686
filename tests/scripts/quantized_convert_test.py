#!/usr/bin/python3
"""quantized_convert_test: scripts/attnserve-convert --quantization against the engine.

For golden attnserve models, Hugging Face checkpoints and the bundled dates model: the
quantized file holds what docs/model-format.md ("Quantized tensors") says, made with the
engine's rounding (checked against a numpy restatement of it), and the engine
(build/engine/decode_tool) decodes the stored-int8 file at --compute_type=int8 exactly as it
decodes the float file quantized at load: the same tokens, log-probs within 1e-5; the stored
bfloat16 file at bfloat16 likewise. Then --float32_embeddings and the refusals.

    /usr/bin/python3 tests/scripts/quantized_convert_test.py DECODE_TOOL [-v]
"""

import json
import os
import random
import re
import subprocess
import sys
import tempfile
import unittest

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "scripts"))

from attnserve_convert_test import header, run  # noqa: E402
from hf_reference import safetensors_io  # noqa: E402

DECODE_TOOL = None  # set from argv
MODELS = [os.path.join(ROOT, "tests", "data", "golden", m)
          for m in ("post_relu_tied_interleaved", "pre_swish_tied_interleaved",
                    "post_gelu_untied_concat")]
HF = [os.path.join(ROOT, "tests", "data", "hf", f, "safetensors")
      for f in ("marian", "t5_v1_1")]
DATES = os.path.join(ROOT, "models", "dates")
MATRIX = re.compile(r"(_proj|\.fc1|\.fc1_linear|\.fc2)\.weight$")
TABLES = {"shared.embed.weight", "encoder.embed.weight", "decoder.embed.weight",
          "lm_head.weight"}


def convert(*argv):
    """(exit status, stderr as one string) of attnserve-convert run in-process."""
    rc, err = run(*argv)
    return rc, "\n".join(err)


def tensors_header(path):
    return header(path)[1]


def numpy_int8(w):
    """The engine's QuantizeRowInt8 restated row by row in numpy float32."""
    w = np.asarray(w, dtype=np.float32)
    q = np.zeros(w.shape, dtype=np.int8)
    scales = np.zeros(w.shape[0], dtype=np.float32)
    for r, row in enumerate(w):
        amax = np.float32(np.max(np.abs(row)))
        if amax < np.finfo(np.float32).tiny:
            continue
        inverse = np.float32(127.0) / amax
        q[r] = np.clip(np.rint(row * inverse), -127, 127).astype(np.int8)
        scales[r] = amax / np.float32(127.0)
    return q, scales


def decode(model_dir, compute_type, sources, backend):
    with tempfile.TemporaryDirectory() as tmp:
        req, out = os.path.join(tmp, "requests.json"), os.path.join(tmp, "out.json")
        with open(req, "w") as f:
            json.dump([{"source": s} for s in sources], f)
        subprocess.run([DECODE_TOOL, f"--model_dir={model_dir}", f"--requests={req}",
                        f"--out={out}", f"--compute_type={compute_type}",
                        f"--backend={backend}", "--max_new_tokens=12", "--batch=4"],
                       check=True, env=dict(os.environ, OMP_WAIT_POLICY="passive"))
        with open(out) as f:
            return json.load(f)


def host_has(flag):
    try:
        with open("/proc/cpuinfo") as f:
            return flag in f.read().split()
    except OSError:
        return False


class Quantized(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.TemporaryDirectory(prefix="quantized_convert_test.")
        cls.addClassCleanup(cls.tmp.cleanup)

    def out(self, name):
        return os.path.join(self.tmp.name, name)

    def sources(self, model_dir, n=6):
        with open(os.path.join(model_dir, "config.json")) as f:
            cfg = json.load(f)
        vocab = cfg["vocab_size"]
        rng = random.Random(vocab)
        return [[rng.randrange(3, vocab) for _ in range(rng.randrange(1, 12))]
                for _ in range(n)]

    def check_same_decode(self, float_dir, stored_dir, compute_type, tolerance):
        backends = ["reference"]
        if host_has("avx512_vnni" if compute_type == "int8" else "avx512_bf16"):
            backends.append("dnnl")
        sources = self.sources(stored_dir)
        for backend in backends:
            a = decode(float_dir, compute_type, sources, backend)
            b = decode(stored_dir, compute_type, sources, backend)
            for x, y in zip(a, b):
                self.assertEqual(x["output_ids"], y["output_ids"], (stored_dir, backend))
                for p, q in zip(x["log_probs"], y["log_probs"]):
                    self.assertAlmostEqual(p, q, delta=tolerance)

    def check_int8_file(self, float_dir, out_dir, float32_embeddings=False):
        floats, _ = safetensors_io.read(os.path.join(float_dir, "model.safetensors"))
        stored, _ = safetensors_io.read(os.path.join(out_dir, "model.safetensors"))
        h = tensors_header(os.path.join(out_dir, "model.safetensors"))
        quantized = 0
        for name, entry in h.items():
            if name == "__metadata__" or name.endswith("_scale"):
                continue
            int8 = bool(MATRIX.search(name)) or (name in TABLES and not float32_embeddings)
            if not int8:
                self.assertNotEqual(entry["dtype"], "I8", name)
                self.assertNotIn(name + "_scale", h, name)
                continue
            quantized += 1
            self.assertEqual(entry["dtype"], "I8", name)
            self.assertEqual(h[name + "_scale"]["dtype"], "F32", name)
            self.assertEqual(h[name + "_scale"]["shape"], entry["shape"][:1], name)
            q, scales = numpy_int8(floats[name].float().numpy()) if name in floats else (None,) * 2
            if q is not None:  # attnserve inputs keep their names; HF ones are renamed
                np.testing.assert_array_equal(stored[name].numpy(), q, err_msg=name)
                np.testing.assert_array_equal(stored[name + "_scale"].numpy(), scales,
                                              err_msg=name)
            self.assertGreaterEqual(int(stored[name].numpy().min()), -127, name)
        self.assertGreater(quantized, 0)
        return quantized

    def test_attnserve_models_int8(self):
        for m in MODELS:
            out = self.out(os.path.basename(m) + "-int8")
            self.assertEqual(convert("--model", m, "--output_dir", out,
                                     "--quantization", "int8"), (0, ""))
            self.check_int8_file(m, out)
            with open(os.path.join(m, "config.json")) as f, \
                    open(os.path.join(out, "config.json")) as g:
                self.assertEqual(json.load(f), json.load(g), "config as it was")
            self.assertFalse(os.path.exists(os.path.join(out, "generation_config.json")))
            self.check_same_decode(m, out, "int8", 1e-5)

    def test_hf_checkpoints_int8_and_bfloat16(self):
        for m in HF:
            family = os.path.basename(os.path.dirname(m))
            int8 = self.out(family + "-int8")
            self.assertEqual(convert("--model", m, "--output_dir", int8,
                                     "--quantization", "int8"), (0, ""))
            self.check_int8_file(m, int8)
            # the HF checkpoint itself, quantized by the engine at load
            self.check_same_decode(m, int8, "int8", 1e-5)
            bf16 = self.out(family + "-bf16")
            self.assertEqual(convert("--model", m, "--output_dir", bf16,
                                     "--quantization", "bfloat16"), (0, ""))
            h = tensors_header(os.path.join(bf16, "model.safetensors"))
            for name, entry in h.items():
                if name == "__metadata__":
                    continue
                want = "BF16" if MATRIX.search(name) or name in TABLES else "F32"
                self.assertEqual(entry["dtype"], want, name)
            self.check_same_decode(m, bf16, "bfloat16", 0.0)

    def test_float32_embeddings_keeps_the_tables(self):
        m = MODELS[2]  # untied: lm_head.weight too
        out = self.out("untied-int8-f32emb")
        self.assertEqual(convert("--model", m, "--output_dir", out, "--quantization", "int8",
                                 "--float32_embeddings"), (0, ""))
        self.check_int8_file(m, out, float32_embeddings=True)
        h = tensors_header(os.path.join(out, "model.safetensors"))
        self.assertEqual(h["lm_head.weight"]["dtype"], "F32")

    def test_dates_model_with_its_vocabulary(self):
        out = self.out("dates-int8")
        self.assertEqual(convert("--model", DATES, "--output_dir", out,
                                 "--quantization", "int8"), (0, ""))
        with open(os.path.join(DATES, "vocab.txt"), "rb") as f, \
                open(os.path.join(out, "vocab.txt"), "rb") as g:
            self.assertEqual(f.read(), g.read())
        self.check_int8_file(DATES, out)
        size = os.path.getsize
        self.assertLess(size(os.path.join(out, "model.safetensors")),
                        0.3 * size(os.path.join(DATES, "model.safetensors")))
        self.check_same_decode(DATES, out, "int8", 1e-5)

    def test_refusals(self):
        out = self.out("int8-once")
        self.assertEqual(convert("--model", MODELS[0], "--output_dir", out,
                                 "--quantization", "int8"), (0, ""))
        rc, err = convert("--model", out, "--output_dir", self.out("int8-twice"),
                          "--quantization", "int8")
        self.assertEqual(rc, 2)
        self.assertIn("torch.int8", err)
        self.assertIn("already quantized", err)
        rc, err = convert("--model", MODELS[0], "--output_dir", self.out("int4"),
                          "--quantization", "int4")
        self.assertEqual(rc, 2)
        self.assertIn("--quantization", err)


if __name__ == "__main__":
    DECODE_TOOL = sys.argv.pop(1)
    unittest.main()
