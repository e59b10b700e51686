#!/usr/bin/env python3
"""Writes tests/data/hf_tokenizers/: Hugging Face-shaped tokenizer directories, one per family,
with golden ids and texts; or, with --check, verifies that the files there are exactly what
this script writes (a ctest, hf_tokenizer_golden_check).

    /usr/bin/python3 scripts/make_hf_tokenizer_golden.py          # (re)generate
    /usr/bin/python3 scripts/make_hf_tokenizer_golden.py --check  # verify, change nothing

Debian's /usr/bin/python3 with python3-sentencepiece (transformers is not installable). Tiny
SentencePiece models are trained on make_spm_golden.py's seeded corpus (unigram for T5 and
Marian, BPE for the fairseq families), each directory holds the files its family ships
(tokenizer_config.json included), and the goldens come from scripts/hf_tokenizer_reference.py,
a re-implementation of each Hugging Face tokenizer's logic around the real SentencePiece.
SentencePiece training is deterministic with one thread, so a rerun is byte-identical.

Per directory, golden.json:
  {"family": str,
   "encode": [{"text": str, "ids": [int], "decoded": str}],   # encode, then decode of those ids
   "encode_from": [{"text": str, "src_lang": str, "ids": [int]}],  # per-request source language
   "target_prefix": [{"text": str, "ids": [int]}],            # text_target, no special tokens
   "decode": [{"ids": [int], "text": str}],                   # random ids, specials included
   "language_ids": {code: id}}                                # codes the family knows
Texts that contain one of the family's special-token strings are left out: Hugging Face splits
the text on them before SentencePiece, which attnserve does not do (docs/tokenizers.md).
"""

import argparse
import filecmp
import json
import os
import random
import shutil
import sys
import tempfile

import sentencepiece as spm

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import hf_tokenizer_reference as ref  # noqa: E402
import make_spm_golden as spm_golden  # noqa: E402

OUT = os.path.normpath(os.path.join(HERE, "..", "tests", "data", "hf_tokenizers"))


def train(corpus, prefix, **options):
    spm.SentencePieceTrainer.train(
        input=corpus, model_prefix=prefix, num_threads=1, hard_vocab_limit=False,
        character_coverage=0.9995, minloglevel=2, **options)
    with open(prefix + ".model", "rb") as f:
        return f.read()


def write(path, data):
    mode = "wb" if isinstance(data, bytes) else "w"
    with open(path, mode, **({} if isinstance(data, bytes) else {"encoding": "utf-8"})) as f:
        f.write(data)


def dump(obj):
    return json.dumps(obj, ensure_ascii=False, indent=1, sort_keys=False) + "\n"


def pieces(model_bytes):
    sp = spm.SentencePieceProcessor(model_proto=model_bytes)
    return [sp.id_to_piece(i) for i in range(sp.get_piece_size())]


def make_dirs(root, tmp):
    rng = random.Random(1616)
    lines = [spm_golden.corpus_line(rng) for _ in range(3000)]
    corpus = os.path.join(tmp, "corpus.txt")
    write(corpus, "\n".join(lines) + "\n")
    # The source side: English and German lines; the target side: French and German.
    src_corpus = os.path.join(tmp, "src.txt")
    tgt_corpus = os.path.join(tmp, "tgt.txt")
    write(src_corpus, "\n".join(lines[0::2]) + "\n")
    write(tgt_corpus, "\n".join(lines[1::2]) + "\n")
    os.chdir(tmp)  # the trainer records relative names in the model file

    # T5: unigram, nmt_nfkc, <pad>=0 </s>=1 <unk>=2 and no <s>, as t5-small's spiece.model.
    t5 = train("corpus.txt", "t5", model_type="unigram", vocab_size=400,
               normalization_rule_name="nmt_nfkc", pad_id=0, eos_id=1, unk_id=2, bos_id=-1)
    d = os.path.join(root, "t5")
    os.makedirs(d)
    write(os.path.join(d, "spiece.model"), t5)
    write(os.path.join(d, "config.json"), dump({"model_type": "t5", "vocab_size": 410}))
    write(os.path.join(d, "tokenizer_config.json"), dump({
        "tokenizer_class": "T5Tokenizer", "extra_ids": 10, "eos_token": "</s>",
        "unk_token": "<unk>", "pad_token": "<pad>",
        "additional_special_tokens": ["<extra_id_%d>" % i for i in range(10)]}))

    # Marian: two unigram models (</s>=0 <unk>=1, as OPUS-MT's), one vocab.json of both sides'
    # pieces with <pad> last; some source pieces left out (they must become <unk>), and
    # target-language tokens for a multilingual target.
    src = train("src.txt", "source", model_type="unigram", vocab_size=300,
                normalization_rule_name="nmt_nfkc", eos_id=0, unk_id=1, bos_id=-1, pad_id=-1)
    tgt = train("tgt.txt", "target", model_type="unigram", vocab_size=300,
                normalization_rule_name="nmt_nfkc", eos_id=0, unk_id=1, bos_id=-1, pad_id=-1)
    vrng = random.Random(7)
    tokens = ["</s>", "<unk>", ">>fr<<", ">>de<<"]
    for p in pieces(src)[2:]:
        if vrng.random() >= 0.05 and p not in tokens:
            tokens.append(p)
    for p in pieces(tgt)[2:]:
        if p not in tokens:
            tokens.append(p)
    tokens.append("<pad>")
    d = os.path.join(root, "marian")
    os.makedirs(d)
    write(os.path.join(d, "source.spm"), src)
    write(os.path.join(d, "target.spm"), tgt)
    write(os.path.join(d, "vocab.json"), dump({t: i for i, t in enumerate(tokens)}))
    write(os.path.join(d, "config.json"),
          dump({"model_type": "marian", "vocab_size": len(tokens)}))
    write(os.path.join(d, "tokenizer_config.json"), dump({
        "tokenizer_class": "MarianTokenizer", "source_lang": "en", "target_lang": "mul",
        "separate_vocabs": False, "clean_up_tokenization_spaces": True}))

    # Marian with separate_vocabs: vocab.json of the source pieces only, target_vocab.json of
    # the target pieces in another order, so that a target prefix's ids come from the target
    # side alone (text target.spm does not know becomes target_vocab.json's <unk>).
    src_tokens = ["</s>", "<unk>", ">>fr<<", ">>de<<"]
    for p in pieces(src)[2:]:
        if vrng.random() >= 0.05 and p not in src_tokens:
            src_tokens.append(p)
    src_tokens.append("<pad>")
    tgt_rest = pieces(tgt)[2:]
    vrng.shuffle(tgt_rest)
    tgt_tokens = ["</s>", "<unk>"] + tgt_rest + ["<pad>"]
    d = os.path.join(root, "marian_separate")
    os.makedirs(d)
    write(os.path.join(d, "source.spm"), src)
    write(os.path.join(d, "target.spm"), tgt)
    write(os.path.join(d, "vocab.json"), dump({t: i for i, t in enumerate(src_tokens)}))
    write(os.path.join(d, "target_vocab.json"),
          dump({t: i for i, t in enumerate(tgt_tokens)}))
    write(os.path.join(d, "config.json"), dump({
        "model_type": "marian", "vocab_size": max(len(src_tokens), len(tgt_tokens))}))
    write(os.path.join(d, "tokenizer_config.json"), dump({
        "tokenizer_class": "MarianTokenizer", "source_lang": "en", "target_lang": "fr",
        "separate_vocabs": True}))

    # fairseq: BPE, <unk>=0 <s>=1 </s>=2 and no pad, as sentencepiece.bpe.model.
    bpe = train("corpus.txt", "bpe", model_type="bpe", vocab_size=400,
                normalization_rule_name="nmt_nfkc", unk_id=0, bos_id=1, eos_id=2, pad_id=-1)
    n = len(pieces(bpe))
    for name, cls, src_lang, codes, extra in [
            ("mbart", "MBartTokenizer", "de_DE", ref.MBART_CODES, {}),
            ("mbart50", "MBart50Tokenizer", "fr_XX", ref.MBART50_CODES, {}),
            ("nllb", "NllbTokenizerFast", "deu_Latn", ref.NLLB_CODES,
             {"additional_special_tokens": ref.NLLB_CODES}),
            ("nllb_legacy", "NllbTokenizer", "fra_Latn", ref.NLLB_CODES,
             {"legacy_behaviour": True})]:
        d = os.path.join(root, name)
        os.makedirs(d)
        write(os.path.join(d, "sentencepiece.bpe.model"), bpe)
        write(os.path.join(d, "config.json"), dump({
            "model_type": "m2m100" if name.startswith("nllb") else "mbart",
            "vocab_size": n + len(codes) + 2}))
        write(os.path.join(d, "tokenizer_config.json"), dump(dict(
            {"tokenizer_class": cls, "src_lang": src_lang, "tgt_lang": None}, **extra)))

    # M2M100: the same BPE model; vocab.json is fairseq's dictionary (its own order, not the
    # model's), some pieces missing; __xx__ tokens after it.
    mrng = random.Random(100)
    rest = [p for p in pieces(bpe)[3:] if mrng.random() >= 0.05]
    mrng.shuffle(rest)
    vocab = ["<s>", "<pad>", "</s>", "<unk>"] + rest
    d = os.path.join(root, "m2m100")
    os.makedirs(d)
    write(os.path.join(d, "sentencepiece.bpe.model"), bpe)
    write(os.path.join(d, "vocab.json"), dump({t: i for i, t in enumerate(vocab)}))
    write(os.path.join(d, "config.json"), dump({
        "model_type": "m2m100", "vocab_size": len(vocab) + len(ref.M2M100_CODES) + 8}))
    write(os.path.join(d, "tokenizer_config.json"), dump({
        "tokenizer_class": "M2M100Tokenizer", "src_lang": "fr", "tgt_lang": "de",
        "language_codes": "m2m100", "num_madeup_words": 8}))


SPECIAL_STRINGS = ["<s>", "</s>", "<unk>", "<pad>", "<mask>", "<extra_id_", "__", ">>"]


def strings():
    out = [t for t in spm_golden.EDGE]
    out += ["Hello world .", "don 't you , right ?", "it 's ok !", "a ' b", "we 're here"]
    srng = random.Random(1717)
    while len(out) < 220:
        out.append(spm_golden.random_string(srng))
    return out


def make_golden(root, family):
    d = os.path.join(root, family)
    tok = ref.load(d, family)
    texts = [t for t in strings() if not any(s in t for s in SPECIAL_STRINGS)]
    if family.startswith("marian"):  # the target-language token at the start is kept whole
        texts += [">>fr<< hello world", ">>de<<Straße", ">>xx<< unknown code", ">>fr<<"]
    encode = []
    for text in texts:
        ids = tok.encode(text)
        encode.append({"text": text, "ids": ids, "decoded": tok.decode(ids)})
    codes = {"mbart": ["ro_RO", "en_XX", "zh_CN"], "mbart50": ["sl_SI", "de_DE"],
             "nllb": ["fra_Latn", "zul_Latn"], "nllb_legacy": ["ace_Arab", "eng_Latn"],
             "m2m100": ["zu", "de", "__en__"], "marian": ["fr", ">>de<<"],
             "marian_separate": [], "t5": [], "bart": []}[family]
    encode_from = [{"text": t, "src_lang": c, "ids": tok.encode(t, c)}
                   for c in codes if not c.startswith((">>", "__")) and family != "marian"
                   for t in ["hello world", "Größe für Mädchen"]]
    language_ids = {c: tok.language_id(c) for c in codes}
    # The decoder prefix of a request's target_prefix_text; for Marian, its target side.
    target_prefix = [{"text": t, "ids": tok.encode_target(t)}
                     for t in texts + ["hello world", "Größe für Mädchen"]]
    drng = random.Random(family)
    # Ids past the tokenizer's vocabulary too where Hugging Face decodes them (T5 names them
    # <extra_id_-N>, Marian and M2M100 give <unk>); the fairseq families would raise there.
    top = {"t5": lambda: tok.vocab_size + 3,
           "marian": lambda: len(tok.decoder) + 3,
           "marian_separate": lambda: len(tok.decoder) + 3,
           "m2m100": lambda: len(tok.encoder) + len(tok.lang_token_to_id) + 10,
           "bart": lambda: len(tok.encoder)}.get(
               family, lambda: max(tok.ids_to_tokens) + 1)()
    decode = []
    for _ in range(80):
        ids = [drng.randrange(top) for _ in range(drng.randint(0, 14))]
        decode.append({"ids": ids, "text": tok.decode(ids)})
    golden = {"family": family, "sentencepiece_version": spm.__version__, "encode": encode,
              "encode_from": encode_from, "target_prefix": target_prefix, "decode": decode,
              "language_ids": language_ids}
    write(os.path.join(d, "golden.json"), dump(golden))
    return len(encode), len(decode)


FAMILIES = ["t5", "marian", "marian_separate", "mbart", "mbart50", "nllb", "nllb_legacy",
            "m2m100", "bart"]


def generate(root):
    with tempfile.TemporaryDirectory() as tmp:
        cwd = os.getcwd()
        try:
            make_dirs(root, tmp)
            make_bart(root)
        finally:
            os.chdir(cwd)
    for family in FAMILIES:
        n_enc, n_dec = make_golden(root, family)
        print(f"{family}: {n_enc} encode, {n_dec} decode cases", file=sys.stderr)


def make_bart(root):
    """BART: byte-level BPE trained here (300 merges) on the corpus; vocab.json holds the
    specials, the 256 byte characters, the merge results (one left out: it must become
    <unk>) and <mask>."""
    rng = random.Random(1616)
    lines = [spm_golden.corpus_line(rng) for _ in range(1500)]
    merges = ref.train_byte_bpe(lines, 300)
    tokens = ["<s>", "<pad>", "</s>", "<unk>"] + list(ref.bytes_to_unicode().values())
    for a, b in merges:
        if a + b not in tokens:
            tokens.append(a + b)
    del tokens[300]
    tokens.append("<mask>")
    d = os.path.join(root, "bart")
    os.makedirs(d)
    write(os.path.join(d, "vocab.json"), dump({t: i for i, t in enumerate(tokens)}))
    write(os.path.join(d, "merges.txt"),
          "#version: 0.2\n" + "".join("%s %s\n" % m for m in merges))
    write(os.path.join(d, "config.json"), dump({"model_type": "bart",
                                                "vocab_size": len(tokens)}))
    write(os.path.join(d, "tokenizer_config.json"), dump({
        "tokenizer_class": "BartTokenizer", "add_prefix_space": False, "errors": "replace"}))


FUZZ_SEEDS = os.path.normpath(os.path.join(HERE, "..", "tests", "fuzz", "corpus",
                                          "tokenizer_files"))
FUZZ_FAMILIES = ["t5", "marian", "mbart50", "nllb", "m2m100", "bart"]  # the fuzzer's order


def write_fuzz_seeds(root):
    """Seeds for tests/fuzz/tokenizer_files_fuzzer.cc (its header gives the framing)."""
    if os.path.exists(FUZZ_SEEDS):
        shutil.rmtree(FUZZ_SEEDS)
    os.makedirs(FUZZ_SEEDS)

    def seed(name, head, body):
        write(os.path.join(FUZZ_SEEDS, name), bytes(head) + body)

    def read(family, name):
        with open(os.path.join(root, family, name), "rb") as f:
            return f.read()

    seed("vocab_marian", [0], read("marian", "vocab.json"))
    seed("vocab_m2m100", [0], read("m2m100", "vocab.json"))
    for f, family in enumerate(FUZZ_FAMILIES):
        seed("config_" + family, [1], read(family, "tokenizer_config.json"))
        seed("dir_config_" + family, [2 + 4 * f, 0], read(family, "tokenizer_config.json"))
        seed("text_" + family, [3 + 4 * f], "Hello world, Größe für Mädchen 東京 😀".encode())
    seed("dir_vocab_marian", [2 + 4 * 1, 1], read("marian", "vocab.json"))
    seed("dir_vocab_m2m100", [2 + 4 * 4, 1], read("m2m100", "vocab.json"))
    seed("dir_merges_bart", [2 + 4 * 5, 2], read("bart", "merges.txt"))
    seed("vocab_bart", [0], read("bart", "vocab.json"))


def same_tree(a, b):
    cmp = filecmp.dircmp(a, b)
    if cmp.left_only or cmp.right_only or cmp.funny_files:
        print(f"differ: {a} vs {b}: {cmp.left_only} {cmp.right_only}", file=sys.stderr)
        return False
    _, mismatch, errors = filecmp.cmpfiles(a, b, cmp.common_files, shallow=False)
    if mismatch or errors:
        print(f"differ in {a}: {mismatch + errors}", file=sys.stderr)
        return False
    return all(same_tree(os.path.join(a, s), os.path.join(b, s)) for s in cmp.common_dirs)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="regenerate into a temporary directory and compare")
    parser.add_argument("--out", default=OUT)
    args = parser.parse_args()
    if args.check:
        with tempfile.TemporaryDirectory() as tmp:
            fresh = os.path.join(tmp, "hf_tokenizers")
            os.makedirs(fresh)
            generate(fresh)
            if not same_tree(fresh, args.out):
                print(f"{args.out} is not what this script writes: rerun it", file=sys.stderr)
                return 1
        print("hf tokenizer goldens reproduce", file=sys.stderr)
        return 0
    if os.path.exists(args.out):
        shutil.rmtree(args.out)
    os.makedirs(args.out)
    generate(args.out)
    write_fuzz_seeds(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
