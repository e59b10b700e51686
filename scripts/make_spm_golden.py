#!/usr/bin/env python3
"""Trains the tiny SentencePiece models of tests/data/spm/ and writes their golden files.

Uses Debian's python3-sentencepiece (the reference implementation, 0.1.97 on Debian 12):
    apt-get install python3-sentencepiece
    /usr/bin/python3 scripts/make_spm_golden.py          # rewrites tests/data/spm/

Everything is seeded, so a rerun gives the same corpus and the same strings; the trainer
itself is deterministic with one thread. The C++ tests (tests/server/tokenizers/sentencepiece_*_test.cc)
check that our own implementation (server/tokenizers/sentencepiece_*.cc) gives exactly these ids and
exactly these decoded strings.

Golden file per model, <name>.golden.json:
  {"model": "<name>.model", "version": "<sentencepiece version>",
   "encode": [{"text": str, "ids": [int], "decoded": str}, ...],
   "decode": [{"ids": [int], "text": str}, ...],
   "encode_bytes": [{"hex": str, "ids": [int], "decoded": str}, ...]}
"encode" is sp.encode(text) (no BOS/EOS) and sp.decode of those ids; "decode" decodes random
id sequences (control, unknown, byte and unused pieces included); "encode_bytes" encodes byte
strings that are not valid UTF-8 (hex in the file, since JSON strings cannot hold them).
"""

import json
import os
import random
import sys
import tempfile

import sentencepiece as spm

OUT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data", "spm"))

EN = ("the quick brown fox jumps over the lazy dog while people watch from the window "
      "model server tokenizer translation request response stream batch latency memory "
      "hello world this is a simple test of many words and numbers").split()
DE = ("der schnelle braune Fuchs springt über den faulen Hund Straße Größe Mädchen "
      "Übersetzung Anfrage Antwort schön früh Grüße für Bücher").split()
FR = ("le renard brun rapide saute par dessus le chien paresseux été café déjà "
      "élève garçon français où très Noël forêt hôpital naïve cœur").split()
CJK = ("東京 大阪 日本語 翻訳 中文 模型 服务 你好 世界 こんにちは ありがとう カタカナ "
       "한국어 안녕하세요").split()
MISC = ["😀", "🚀", "👍🏽", "€", "£", "¥", "©", "™", "…", "—", "«", "»", "„", "“", "”",
        "½", "²", "①", "ﬁ", "Ａ", "ｂ", "１２３", "ｶﾀｶﾅ", "e\u0301", "n\u0303", "Å", "Ω"]
DIGITS = ["0", "1", "2", "3", "42", "2024", "3.14", "1,000", "100%", "12:30", "+49", "#7"]


def corpus_line(rng):
    pools = [EN] * 4 + [DE] * 2 + [FR] * 2 + [CJK]
    n = rng.randint(3, 12)
    words = []
    pool = rng.choice(pools)
    for _ in range(n):
        r = rng.random()
        if r < 0.08:
            words.append(rng.choice(DIGITS))
        elif r < 0.13:
            words.append(rng.choice(MISC))
        else:
            w = rng.choice(pool)
            if rng.random() < 0.1:
                w = w.capitalize()
            words.append(w)
    return " ".join(words) + rng.choice(["", ".", "!", "?", ","])


# Edge cases every model is checked on; the random strings below add breadth.
EDGE = [
    "", " ", "  ", "\t", "\n", " \t\n ", "a", " a", "a ", "  a  b  ", "a\tb", "a\nb", "a\r\nb",
    "hello world", "Hello World", "HELLO WORLD", "hello  world", " hello world ",
    "the quick brown fox", "Straße", "Größe für Mädchen", "café déjà vu", "cœur naïve",
    "東京", "日本語の翻訳", "こんにちは世界", "안녕하세요", "😀", "🚀 launch 👍🏽", "a😀b",
    "123", "3.14159", "2024-01-01", "1,000,000", "+49 30 123456", "100%",
    "e\u0301", "cafe\u0301", "n\u0303o", "A\u030a", "\u212b",  # combining, ANGSTROM SIGN
    "Ｈｅｌｌｏ", "ＡＢＣ１２３", "ｶﾀｶﾅ", "ﬁne ﬂow", "①②③", "½ ²", "™ ©",  # NFKC folds
    "\u3000", "a\u3000b", "\u00a0", "a\u00a0b", "\u200b", "a\u200bb", "\ufeffbom",
    "\u2581", "\u2581a", "a\u2581b", "▁▁", "<unk>", "<s>", "</s>", "<pad>", "<0x41>",
    "\u2047", "\ufffd", "\x00", "a\x00b", "\x01\x02", "\x7f",
    "ǅ", "ǆ", "İstanbul", "ΣΊΣΥΦΟΣ", "Ελληνικά", "Русский текст", "עברית", "العربية",
    "हिन्दी", "ไทย", "ᚠᛇᚻ", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢", "𐍈", "\U0010fffd", "🏳️‍🌈", "👨‍👩‍👧",
    "x" * 50, "ab" * 40, " ".join(["word"] * 30), "the the the the",
    "Mixed 混合 text テキスト with 😀 and 123.",
    "line one\nline two\n\nline four", "tab\tseparated\tvalues", "  leading", "trailing  ",
    "[SEP]", "<mask>", "a<mask>b", " <mask> ", "[SEP][SEP]", "<2de> Hallo", "<2de>",
]


def random_string(rng):
    kind = rng.random()
    if kind < 0.5:
        return corpus_line(rng)
    if kind < 0.8:
        chars = (list("abcdefghijklmnopqrstuvwxyzABCXYZ0123456789 .,!?-'\"()") * 3 +
                 list("äöüßéèêàçœ东京日本語中文한국😀🚀€") + [" ", "  ", "\t", "\n", "\u3000",
                 "Ａ", "ｂ", "１", "ﬁ", "e\u0301", "\u00a0", "\u200b", "\u2581", "Ω", "ж"])
        return "".join(rng.choice(chars) for _ in range(rng.randint(1, 30)))
    # Arbitrary code points, mostly unseen in training: unknown characters.
    out = []
    for _ in range(rng.randint(1, 12)):
        r = rng.random()
        if r < 0.4:
            cp = rng.randint(0x20, 0x2FF)
        elif r < 0.7:
            cp = rng.randint(0x300, 0xD7FF)
        elif r < 0.9:
            cp = rng.randint(0xE000, 0xFFFD)
        else:
            cp = rng.randint(0x10000, 0x10FFFF)
        out.append(chr(cp))
        if rng.random() < 0.2:
            out.append(" ")
    return "".join(out)


MODELS = {
    # Unigram with nmt_nfkc (T5, Marian) plus user-defined and control symbols.
    "unigram_nfkc": dict(model_type="unigram", vocab_size=500,
                         normalization_rule_name="nmt_nfkc",
                         user_defined_symbols=["<mask>", "[SEP]"],
                         control_symbols=["<2de>", "<2fr>"]),
    # Unigram with byte fallback (unknown characters become <0xNN> pieces).
    "unigram_bytes": dict(model_type="unigram", vocab_size=700, byte_fallback=True,
                          normalization_rule_name="nmt_nfkc", pad_id=3),
    # BPE with the case-folding variant of nmt_nfkc.
    "bpe_nfkc_cf": dict(model_type="bpe", vocab_size=500,
                        normalization_rule_name="nmt_nfkc_cf"),
    # Identity normalizer, spaces kept as they are, no dummy prefix.
    "unigram_identity": dict(model_type="unigram", vocab_size=400,
                             normalization_rule_name="identity",
                             remove_extra_whitespaces=False, add_dummy_prefix=False),
    # A custom rule set (normalization_rule_tsv): a small charsmap, whose trie also seeds
    # the fuzzer (tests/fuzz/corpus/sentencepiece/). Rules: fold ß, æ and the ligatures,
    # map U+3000 and tab to space, drop U+200B, and an overlapping longest-match pair.
    "unigram_rules": dict(model_type="unigram", vocab_size=300, byte_fallback=False,
                          normalization_rule_tsv="rules.tsv"),
    # BPE with byte fallback and the identity normalizer.
    "bpe_bytes_identity": dict(model_type="bpe", vocab_size=600, byte_fallback=True,
                               normalization_rule_name="identity"),
}


def main():
    rng = random.Random(16)
    lines = [corpus_line(rng) for _ in range(4000)]
    strings = list(EDGE)
    srng = random.Random(1616)
    while len(strings) < 260:
        strings.append(random_string(srng))

    brng = random.Random(161616)
    byte_strings = [b"\xff", b"\xc3", b"a\xc3", b"\xe2\x96", b"\xed\xa0\x80", b"\xc0\xaf",
                    b"\xf4\x90\x80\x80", b"\x80abc", b"ab\xfe\xffcd", b"\xf0\x9f\x98"]
    while len(byte_strings) < 40:
        byte_strings.append(bytes(brng.randrange(256) for _ in range(brng.randint(1, 16))))

    os.makedirs(OUT, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        # Relative names: the trainer records input and model_prefix in the model file.
        os.chdir(tmp)
        corpus = "corpus.txt"
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(lines) + "\n")
        with open("rules.tsv", "w", encoding="utf-8") as f:
            f.write("DF\t73 73\nE6\t61 65\nFB01\t66 69\nFB02\t66 6C\n3000\t20\n9\t20\n"
                    "200B\t\n41 42\t78\n41 42 43\t79 79\nFF21\t41\n")
        for name, options in MODELS.items():
            prefix = name
            spm.SentencePieceTrainer.train(
                input=corpus, model_prefix=prefix, num_threads=1, hard_vocab_limit=False,
                character_coverage=0.9995, minloglevel=2, **options)
            with open(prefix + ".model", "rb") as f:
                model_bytes = f.read()
            with open(os.path.join(OUT, name + ".model"), "wb") as f:
                f.write(model_bytes)
            sp = spm.SentencePieceProcessor(model_proto=model_bytes)
            encode = []
            for text in strings:
                ids = sp.encode(text)
                encode.append({"text": text, "ids": ids, "decoded": sp.decode(ids)})
            drng = random.Random(name)
            decode = []
            for _ in range(50):
                ids = [drng.randrange(sp.get_piece_size())
                       for _ in range(drng.randint(0, 12))]
                decode.append({"ids": ids, "text": sp.decode(ids)})
            encode_bytes = []
            for raw in byte_strings:
                ids = sp.encode(raw)
                encode_bytes.append({"hex": raw.hex(), "ids": ids, "decoded": sp.decode(ids)})
            golden = {"model": name + ".model", "version": spm.__version__,
                      "encode": encode, "decode": decode, "encode_bytes": encode_bytes}
            with open(os.path.join(OUT, name + ".golden.json"), "w", encoding="utf-8") as f:
                json.dump(golden, f, ensure_ascii=False, indent=None, separators=(",", ":"))
                f.write("\n")
            print(f"{name}: {sp.get_piece_size()} pieces, {len(model_bytes)} bytes, "
                  f"{len(encode)} encode and {len(decode)} decode cases", file=sys.stderr)
    write_fuzz_seeds()


def write_fuzz_seeds():
    """Seeds for tests/fuzz/sentencepiece_fuzzer.cc (its header gives the framing)."""
    seeds = os.path.normpath(os.path.join(OUT, "..", "..", "fuzz", "corpus", "sentencepiece"))
    os.makedirs(seeds, exist_ok=True)
    for old in os.listdir(seeds):
        os.remove(os.path.join(seeds, old))
    # Mode 0: the small models (the nmt_nfkc ones are ~250 KB, too big to mutate well).
    for name in ("unigram_identity", "unigram_rules", "bpe_bytes_identity"):
        with open(os.path.join(OUT, name + ".model"), "rb") as f:
            model = f.read()
        with open(os.path.join(seeds, "model_" + name), "wb") as f:
            f.write(b"\x00" + model)
    texts = [b"Hello world", "  Größe   für \t Mädchen 😀 ".encode(), "東京 ﬁ Ａ１".encode(),
             b"a\xff\xc3b", "ABC\u3000AB\u200b".encode()]
    for which in range(3):
        for i, text in enumerate(texts):  # mode 1: text for fixed model `which`
            with open(os.path.join(seeds, f"text_{which}_{i}"), "wb") as f:
                f.write(bytes([1 + 3 * which]) + text)
        with open(os.path.join(seeds, f"ids_{which}"), "wb") as f:  # mode 2
            f.write(bytes([2 + 3 * which]) + bytes(range(0, 64)))


if __name__ == "__main__":
    main()
