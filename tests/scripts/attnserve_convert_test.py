#!/usr/bin/python3
"""attnserve_convert_test: scripts/attnserve-convert against the Hugging Face reference.

Every family of tests/data/hf, from model.safetensors and from pytorch_model.bin, is
converted; the attnserve-format reference (scripts/attnserve_reference.py, written from the
format's text) loaded from the converted directory must give golden.json's greedy tokens and
logits within 1e-4 of scripts/hf_reference (float64). Then every refusal, --dtype, the
tokenizer files and --force.

    /usr/bin/python3 tests/scripts/attnserve_convert_test.py [-v]
"""

import contextlib
import io
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import unittest

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPTS = os.path.join(ROOT, "scripts")
HF = os.path.join(ROOT, "tests", "data", "hf")
sys.path.insert(0, SCRIPTS)

import attnserve_reference as ar  # noqa: E402
import hf_reference as hr  # noqa: E402
from hf_convert import cli  # noqa: E402
from hf_reference import generate as G  # noqa: E402
from hf_reference import safetensors_io  # noqa: E402

FAMILIES = ("marian", "t5_v1_0", "t5_v1_1", "bart", "mbart", "m2m100")
FORMATS = ("safetensors", "bin")
TOL = 1e-4


def run(*argv):
    """(exit status, stderr lines) of the tool's main, in-process (torch loads once)."""
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            rc = cli.main(list(argv))
        except SystemExit as e:  # argparse
            rc = e.code
    return rc, err.getvalue().splitlines()


def golden(family):
    with open(os.path.join(HF, family, "golden.json")) as f:
        return json.load(f)


def header(path):
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        raw = f.read(n)
    return n, json.loads(raw)


def padded_logits(model, sources, seqs, pad):
    """Teacher-forced logits [N,T,V] of a right-padded batch (so padding is exercised)."""
    enc, mask = G.encode_batch(model, sources, pad)
    T = max(len(s) for s in seqs)
    dec = torch.tensor([s + [pad] * (T - len(s)) for s in seqs])
    with torch.no_grad():
        return model.logits(dec, enc, mask), [len(s) for s in seqs]


class Equivalence(unittest.TestCase):
    """The converted directories mean what the checkpoints mean."""

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="attnserve_convert_test.")

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def check_family(self, family, fmt):
        src = os.path.join(HF, family, fmt)
        out = os.path.join(self.tmp, f"{family}-{fmt}")
        rc, err = run("--model", src, "--output_dir", out)
        self.assertEqual((rc, err), (0, []))
        g = golden(family)
        model = ar.load(out, torch.float64, strict=True)  # strict: no stray tensor written
        gc = ar.generation_config(out)
        self.assertEqual(gc.as_dict(), g["generation"], "generation_config.json normalised")
        res = G.greedy(model, gc, g["sources"])
        self.assertEqual([r["tokens"] for r in res], [x["tokens"] for x in g["greedy"]])
        for r, x in zip(res, g["greedy"]):
            for a, b in zip(r["logprobs"], x["logprobs"]):
                self.assertAlmostEqual(a, b, delta=TOL)
        # logits against the HF reference on three sources, as one padded batch
        hf_model, _, _ = hr.load_model(src, torch.float64)
        idx = [0, 2, len(g["sources"]) - 1]
        sources = [g["sources"][i] for i in idx]
        seqs = [g["greedy"][i]["sequence"] for i in idx]
        ours, lens = padded_logits(model, sources, seqs, gc.pad)
        theirs, _ = padded_logits(hf_model, sources, seqs, gc.pad)
        for i, n in enumerate(lens):
            diff = float((ours[i, :n] - theirs[i, :n]).abs().max())
            self.assertLess(diff, TOL, f"{family}/{fmt} source {idx[i]}")
        # the probe of golden.json (last-position logits of a short prefix)
        p = g["probe"]
        enc, mask = G.encode_batch(model, [g["sources"][p["source_index"]]], gc.pad)
        with torch.no_grad():
            last = model.logits(torch.tensor([p["decoder_input_ids"]]), enc, mask)[0, -1]
        self.assertLess(float((last - torch.tensor(p["last_position_logits"], dtype=torch.float64))
                              .abs().max()), TOL)
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual(set(cfg), set(ar.DEFAULTS), "every key written out, no tokenizer key")
        n, h = header(os.path.join(out, "model.safetensors"))
        names = [k for k in h if k != "__metadata__"]
        self.assertEqual(names, sorted(names))
        self.assertEqual((8 + n) % 8, 0)
        self.assertEqual({h[k]["dtype"] for k in names}, {"F32"})
        return cfg

    def test_marian(self):
        for fmt in FORMATS:
            cfg = self.check_family("marian", fmt)
            self.assertEqual(cfg["positional_encoding"], "learned")  # the stored table

    def test_t5_v1_0(self):
        for fmt in FORMATS:
            cfg = self.check_family("t5_v1_0", fmt)
            self.assertEqual((cfg["gated_ffn"], cfg["output_scale"]), (False, 32 ** -0.5))

    def test_t5_v1_1(self):
        for fmt in FORMATS:
            cfg = self.check_family("t5_v1_1", fmt)
            self.assertEqual((cfg["gated_ffn"], cfg["activation"], cfg["attention_head_dim"],
                              cfg["output_scale"]), (True, "gelu_tanh", 24, 1.0))

    def test_bart(self):
        for fmt in FORMATS:
            self.check_family("bart", fmt)

    def test_mbart(self):
        for fmt in FORMATS:
            self.check_family("mbart", fmt)

    def test_m2m100(self):
        for fmt in FORMATS:
            cfg = self.check_family("m2m100", fmt)
            self.assertEqual((cfg["positional_encoding"], cfg["position_offset"]),
                             ("sinusoidal_fairseq", 2))


class Tool(unittest.TestCase):
    """Refusals, --dtype, tokenizer files, --force."""

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="attnserve_convert_test.")

    def tearDown(self):
        shutil.rmtree(self.tmp, ignore_errors=True)

    def copy(self, family, fmt="safetensors", name="in"):
        d = os.path.join(self.tmp, name)
        shutil.copytree(os.path.join(HF, family, fmt), d)
        return d

    def edit_json(self, path, **changes):
        with open(path) as f:
            d = json.load(f)
        d.update(changes)
        with open(path, "w") as f:
            json.dump(d, f)

    def refused(self, model_dir, *words, extra=()):
        out = os.path.join(self.tmp, "out")
        rc, err = run("--model", model_dir, "--output_dir", out, *extra)
        self.assertEqual(rc, 2, err)
        self.assertEqual(len(err), 1, err)
        self.assertTrue(err[0].startswith("attnserve-convert: error: "), err[0])
        for w in words:
            self.assertIn(w, err[0])
        return err[0]

    def edit_tensors(self, d, fn):
        path = os.path.join(d, "model.safetensors")
        sd, meta = safetensors_io.read(path)
        fn(sd)
        safetensors_io.write(path, sd, meta)

    # --- refusals -------------------------------------------------------------------------
    def test_unknown_model_type(self):
        d = self.copy("bart")
        self.edit_json(os.path.join(d, "config.json"), model_type="pegasus")
        self.refused(d, "model_type", "'pegasus'")
        self.assertFalse(os.path.exists(os.path.join(self.tmp, "out")), "nothing written")

    def test_sharded(self):
        d = self.copy("bart")
        with open(os.path.join(d, "model.safetensors.index.json"), "w") as f:
            json.dump({"weight_map": {}}, f)
        self.refused(d, "sharded", "model.safetensors.index.json")

    def test_bin_not_a_zip(self):
        d = self.copy("bart", "bin")
        with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
            f.write(b"\x80\x02}q\x00.")  # a bare (legacy) pickle: never handed to torch.load
        self.refused(d, "pytorch_model.bin", "not a torch zip archive")

    def test_pickle_that_would_run_code(self):
        d = self.copy("bart", "bin")
        marker = os.path.join(self.tmp, "code_ran")

        class Payload:
            def __reduce__(self):
                return (os.mkdir, (marker,))

        sd = torch.load(os.path.join(d, "pytorch_model.bin"), weights_only=True)
        sd["model.payload"] = Payload()
        torch.save(sd, os.path.join(d, "pytorch_model.bin"))
        self.refused(d, "weights-only")
        self.assertFalse(os.path.exists(marker), "pickled code ran")

    def test_unsupported_activation(self):
        d = self.copy("bart")
        self.edit_json(os.path.join(d, "config.json"), activation_function="tanh")
        self.refused(d, "activation_function", "'tanh'")
        d = self.copy("t5_v1_1", name="t5")
        self.edit_json(os.path.join(d, "config.json"), feed_forward_proj="gated-mish")
        self.refused(d, "feed_forward_proj", "'gated-mish'")

    def test_unsupported_options(self):
        d = self.copy("marian")
        self.edit_json(os.path.join(d, "config.json"), decoder_attention_heads=4)
        self.refused(d, "decoder_attention_heads 4")
        d = self.copy("marian", name="m2")
        self.edit_json(os.path.join(d, "config.json"), decoder_vocab_size=50)
        self.refused(d, "decoder_vocab_size 50")
        d = self.copy("marian", name="m3")
        self.edit_json(os.path.join(d, "generation_config.json"), do_sample=True)
        self.refused(d, "do_sample True")

    def test_wrong_types(self):
        """Mistyped values are one-line refusals naming the key, never a traceback."""
        cases = [("config.json", "d_model", "32"), ("config.json", "activation_function", ["gelu"]),
                 ("config.json", "encoder_layers", -1), ("config.json", "vocab_size", True),
                 ("config.json", "scale_embedding", "yes"), ("generation_config.json", "max_length", "x"),
                 ("generation_config.json", "forced_eos_token_id", 1.5),
                 ("generation_config.json", "eos_token_id", []),
                 ("generation_config.json", "num_beams", 0),
                 ("generation_config.json", "bad_words_ids", [1, 2])]
        for i, (fname, key, value) in enumerate(cases):
            d = self.copy("bart", name=f"in{i}")
            self.edit_json(os.path.join(d, fname), **{key: value})
            self.refused(d, key)

    def test_non_empty_output_dir(self):
        out = os.path.join(self.tmp, "out")
        os.makedirs(out)
        with open(os.path.join(out, "keep.txt"), "w") as f:
            f.write("x")
        self.refused(os.path.join(HF, "bart", "safetensors"), "not empty", "--force")
        self.assertEqual(os.listdir(out), ["keep.txt"])
        rc, err = run("--model", os.path.join(HF, "bart", "safetensors"), "--output_dir", out,
                      "--force")
        self.assertEqual((rc, err), (0, []))
        self.assertEqual(sorted(os.listdir(out)), ["config.json", "generation_config.json",
                                                   "keep.txt", "model.safetensors"])
        rc, err = run("--model", out, "--output_dir", out, "--force")
        self.assertEqual(rc, 2)
        self.assertIn("the checkpoint directory", err[0])

    def test_tensor_errors(self):
        d = self.copy("bart")
        self.edit_tensors(d, lambda sd: sd.update({"model.encoder.extra.weight": torch.zeros(3)}))
        self.refused(d, "unexpected tensors", "model.encoder.extra.weight")
        d = self.copy("bart", name="b2")
        self.edit_tensors(d, lambda sd: sd.pop("model.decoder.layers.1.fc2.bias"))
        self.refused(d, "missing tensor model.decoder.layers.1.fc2.bias")
        d = self.copy("t5_v1_0", name="b3")
        self.edit_tensors(d, lambda sd: sd.update(
            {"encoder.block.0.layer.0.SelfAttention.relative_attention_bias.weight": torch.zeros(8, 2)}))
        self.refused(d, "relative_attention_bias.weight", "[8, 2]", "[32, 2]")
        d = self.copy("t5_v1_0", name="b4")
        path = os.path.join(d, "model.safetensors")
        with open(path, "rb") as f:
            blob = f.read()
        with open(path, "wb") as f:
            f.write(blob[:len(blob) // 2])  # truncated: the header points past the end
        self.refused(d, "model.safetensors", "data_offsets")

    def test_tied_subsets(self):
        # the .bin files store aliases of the shared table: any subset works, equal ones only
        d = self.copy("bart", "bin")
        path = os.path.join(d, "pytorch_model.bin")
        sd = torch.load(path, weights_only=True)
        self.assertIn("model.encoder.embed_tokens.weight", sd)
        only = {k: v for k, v in sd.items() if k != "model.shared.weight"}
        torch.save(only, path)
        rc, err = run("--model", d, "--output_dir", os.path.join(self.tmp, "ok"))
        self.assertEqual((rc, err), (0, []))
        bad = dict(sd)
        bad["model.decoder.embed_tokens.weight"] = sd["model.shared.weight"] + 1
        torch.save(bad, path)
        self.refused(d, "tied tensors", "differ")

    def decodes_golden(self, out, family):
        g = golden(family)
        model = ar.load(out, torch.float64, strict=True)
        res = G.greedy(model, ar.generation_config(out), g["sources"])
        self.assertEqual([r["tokens"] for r in res], [x["tokens"] for x in g["greedy"]])

    def test_separate_and_untied_tables(self):
        # Marian with share_encoder_decoder_embeddings false: two tables (same values here,
        # so golden.json still holds); BART with tie_word_embeddings false: its own lm_head.
        d = self.copy("marian")
        self.edit_json(os.path.join(d, "config.json"), share_encoder_decoder_embeddings=False)
        self.edit_tensors(d, lambda sd: sd.update({
            "model.encoder.embed_tokens.weight": sd["model.shared.weight"],
            "model.decoder.embed_tokens.weight": sd.pop("model.shared.weight").clone()}))
        out = os.path.join(self.tmp, "marian")
        self.assertEqual(run("--model", d, "--output_dir", out), (0, []))
        names = set(safetensors_io.read(os.path.join(out, "model.safetensors"))[0])
        self.assertTrue({"encoder.embed.weight", "decoder.embed.weight"} <= names)
        self.assertNotIn("shared.embed.weight", names)
        self.decodes_golden(out, "marian")
        d = self.copy("bart", name="bart_in")
        self.edit_json(os.path.join(d, "config.json"), tie_word_embeddings=False)
        self.edit_tensors(d, lambda sd: sd.update({"lm_head.weight": sd["model.shared.weight"].clone()}))
        out = os.path.join(self.tmp, "bart")
        self.assertEqual(run("--model", d, "--output_dir", out), (0, []))
        with open(os.path.join(out, "config.json")) as f:
            self.assertFalse(json.load(f)["tie_output_embedding"])
        self.decodes_golden(out, "bart")
        # untied without lm_head.weight: refused
        self.edit_tensors(d, lambda sd: sd.pop("lm_head.weight"))
        self.refused(d, "missing tensor lm_head.weight")

    def test_safetensors_preferred(self):
        d = self.copy("mbart")
        with open(os.path.join(d, "pytorch_model.bin"), "wb") as f:
            f.write(b"not read")
        rc, err = run("--model", d, "--output_dir", os.path.join(self.tmp, "out"))
        self.assertEqual((rc, err), (0, []))

    # --- --dtype --------------------------------------------------------------------------
    def test_dtype(self):
        f32 = os.path.join(self.tmp, "f32")
        self.assertEqual(run("--model", os.path.join(HF, "m2m100", "bin"), "--output_dir", f32)[0], 0)
        ref, _ = safetensors_io.read(os.path.join(f32, "model.safetensors"))
        for dt, st in (("float16", "F16"), ("bfloat16", "BF16")):
            out = os.path.join(self.tmp, dt)
            rc, err = run("--model", os.path.join(HF, "m2m100", "bin"), "--output_dir", out,
                          "--dtype", dt)
            self.assertEqual((rc, err), (0, []))
            _, h = header(os.path.join(out, "model.safetensors"))
            self.assertEqual({v["dtype"] for k, v in h.items() if k != "__metadata__"}, {st})
            got, _ = safetensors_io.read(os.path.join(out, "model.safetensors"))
            self.assertEqual(set(got), set(ref))
            for k in ref:
                self.assertTrue(torch.equal(got[k], ref[k].to(getattr(torch, dt))), k)
        # m2m100's weights lie on the float16 grid: the F16 directory decodes identically
        g = golden("m2m100")
        a = ar.load(f32, torch.float64)
        b = ar.load(os.path.join(self.tmp, "float16"), torch.float64)
        seqs = [x["sequence"] for x in g["greedy"][:2]]
        la, _ = padded_logits(a, g["sources"][:2], seqs, 1)
        lb, _ = padded_logits(b, g["sources"][:2], seqs, 1)
        self.assertTrue(torch.equal(la, lb))
        # a value float16 cannot hold is refused, not written as inf
        d = self.copy("bart")
        self.edit_tensors(d, lambda sd: sd["model.encoder.layers.0.fc1.weight"].__setitem__((0, 0), 1e6))
        self.refused(d, "encoder.layers.0.ffn.fc1.weight", "float16", extra=("--dtype", "float16"))
        rc, err = run("--model", d, "--output_dir", os.path.join(self.tmp, "x"), "--dtype", "int8")
        self.assertEqual(rc, 2)
        self.assertEqual(len(err), 1)
        self.assertIn("int8", err[0])

    # --- tokenizer files, generation fallbacks ------------------------------------------
    def test_tokenizer_files(self):
        cases = [
            ("marian", {"source.spm": b"S", "target.spm": b"T", "vocab.json": b"{}",
                        "tokenizer_config.json": b'{"tokenizer_class": "MarianTokenizer"}'},
             {"tokenizer": "marian"}),
            ("t5_v1_0", {"spiece.model": b"\x00spm", "special_tokens_map.json": b"{}"},
             {"tokenizer": "sentencepiece", "vocab_file": "spiece.model"}),
            ("m2m100", {"sentencepiece.bpe.model": b"B",
                        "tokenizer_config.json": b'{"tokenizer_class": "NllbTokenizerFast"}'},
             {"tokenizer": "nllb"}),
            ("m2m100", {"sentencepiece.bpe.model": b"B", "vocab.json": b"{}",
                        "added_tokens.json": b"{}"}, {"tokenizer": "m2m100"}),
            ("mbart", {"sentencepiece.bpe.model": b"B"}, {"tokenizer": "mbart"}),
            ("bart", {"vocab.json": b"{}", "merges.txt": b"#v\n"}, {"tokenizer": "bart"}),
        ]
        for i, (family, files, keys) in enumerate(cases):
            d = self.copy(family, name=f"in{i}")
            for name, data in files.items():
                with open(os.path.join(d, name), "wb") as f:
                    f.write(data)
            out = os.path.join(self.tmp, f"out{i}")
            rc, err = run("--model", d, "--output_dir", out)
            self.assertEqual((rc, err), (0, []), family)
            for name, data in files.items():
                with open(os.path.join(out, name), "rb") as f:
                    self.assertEqual(f.read(), data, name)
            with open(os.path.join(out, "config.json")) as f:
                cfg = json.load(f)
            self.assertEqual({k: cfg[k] for k in ("tokenizer", "vocab_file") if k in cfg}, keys)
            self.assertEqual(set(cfg) - set(ar.DEFAULTS), set(keys))
        d = self.copy("m2m100", name="partial")
        with open(os.path.join(d, "sentencepiece.bpe.model"), "wb") as f:
            f.write(b"B")
        self.refused(d, "tokenizer \"m2m100\" needs vocab.json")

    def test_force_removes_stale_files(self):
        d = self.copy("bart")
        for name in ("vocab.json", "merges.txt"):
            with open(os.path.join(d, name), "w") as f:
                f.write("{}")
        out = os.path.join(self.tmp, "out")
        self.assertEqual(run("--model", d, "--output_dir", out)[0], 0)
        self.assertTrue(os.path.exists(os.path.join(out, "merges.txt")))
        rc, err = run("--model", os.path.join(HF, "bart", "safetensors"), "--output_dir", out,
                      "--force")
        self.assertEqual((rc, err), (0, []))
        self.assertEqual(sorted(os.listdir(out)),
                         ["config.json", "generation_config.json", "model.safetensors"])

    def test_generation_fallbacks(self):
        d = self.copy("marian")
        os.remove(os.path.join(d, "generation_config.json"))
        out = os.path.join(self.tmp, "out")
        self.assertEqual(run("--model", d, "--output_dir", out)[0], 0)
        with open(os.path.join(out, "generation_config.json")) as f:
            gen = json.load(f)
        # config.json's ids, Marian's forced_eos, GenerationConfig's defaults: all written out
        self.assertEqual(gen, {"decoder_start_token_id": 95, "eos_token_id": 0, "pad_token_id": 95,
                               "forced_eos_token_id": 0, "max_length": 20, "min_length": 0,
                               "no_repeat_ngram_size": 0, "num_beams": 1, "length_penalty": 1.0,
                               "early_stopping": False})
        with open(os.path.join(out, "config.json")) as f:
            cfg = json.load(f)
        self.assertEqual((cfg["pad_id"], cfg["eos_id"], cfg["decoder_start_id"], cfg["bos_id"]),
                         (95, 0, 95, 95))
        d = self.copy("bart", name="b")
        self.edit_json(os.path.join(d, "generation_config.json"), max_new_tokens=5, temperature=0.7)
        out = os.path.join(self.tmp, "out2")
        self.assertEqual(run("--model", d, "--output_dir", out)[0], 0)
        with open(os.path.join(out, "generation_config.json")) as f:
            gen = json.load(f)
        self.assertEqual(gen["max_length"], 6)  # the start token + max_new_tokens
        self.assertNotIn("max_new_tokens", gen)
        self.assertNotIn("temperature", gen)  # sampling only: ignored, as HF ignores it

    def test_executable(self):
        """The script itself (shebang, sys.path): one real process for success and refusal."""
        tool = os.path.join(SCRIPTS, "attnserve-convert")
        out = os.path.join(self.tmp, "out")
        env = dict(os.environ, OMP_NUM_THREADS="1")
        p = subprocess.run([tool, "--model", os.path.join(HF, "t5_v1_1", "bin"), "--output_dir", out],
                           capture_output=True, text=True, env=env)
        self.assertEqual((p.returncode, p.stderr), (0, ""))
        self.assertTrue(os.path.exists(os.path.join(out, "model.safetensors")))
        p = subprocess.run([tool, "--model", os.path.join(HF, "t5_v1_1", "bin"), "--output_dir", out],
                           capture_output=True, text=True, env=env)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(len(p.stderr.splitlines()), 1, p.stderr)
        self.assertNotIn("Traceback", p.stderr)


if __name__ == "__main__":
    torch.set_num_threads(1)
    unittest.main()
