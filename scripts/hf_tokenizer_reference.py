"""A small Python re-implementation of Hugging Face's slow tokenizers for the families attnserve
serves (T5Tokenizer, MarianTokenizer, MBartTokenizer, MBart50Tokenizer, NllbTokenizer,
M2M100Tokenizer), written from reading transformers' tokenization_*.py (none of it copied), for
the golden files of make_hf_tokenizer_golden.py. transformers itself is not installable here;
SentencePiece is Debian's python3-sentencepiece, the library those tokenizers call.

What is modelled: the text -> pieces -> ids path of encode (text with add_special_tokens=True),
encode_target (text_target with add_special_tokens=False: the target side, no special token)
and decode(ids, skip_special_tokens=True). What is not (docs/tokenizers.md, "Choices"): the
split of the text on added/special token strings before SentencePiece sees it, Marian's optional
Moses punctuation normaliser, T5's non-legacy mode.
"""

import json
import os

import sentencepiece as spm

SPIECE_UNDERLINE = "\u2581"

MBART_CODES = ["ar_AR", "cs_CZ", "de_DE", "en_XX", "es_XX", "et_EE", "fi_FI", "fr_XX", "gu_IN",
               "hi_IN", "it_IT", "ja_XX", "kk_KZ", "ko_KR", "lt_LT", "lv_LV", "my_MM", "ne_NP",
               "nl_XX", "ro_RO", "ru_RU", "si_LK", "tr_TR", "vi_VN", "zh_CN"]
MBART50_CODES = MBART_CODES + [
    "af_ZA", "az_AZ", "bn_IN", "fa_IR", "he_IL", "hr_HR", "id_ID", "ka_GE", "km_KH", "mk_MK",
    "ml_IN", "mn_MN", "mr_IN", "pl_PL", "ps_AF", "pt_XX", "sv_SE", "sw_KE", "ta_IN", "te_IN",
    "th_TH", "tl_XX", "uk_UA", "ur_PK", "xh_ZA", "gl_ES", "sl_SI"]
NLLB_CODES = (
    "ace_Arab ace_Latn acm_Arab acq_Arab aeb_Arab afr_Latn ajp_Arab aka_Latn amh_Ethi apc_Arab "
    "arb_Arab ars_Arab ary_Arab arz_Arab asm_Beng ast_Latn awa_Deva ayr_Latn azb_Arab azj_Latn "
    "bak_Cyrl bam_Latn ban_Latn bel_Cyrl bem_Latn ben_Beng bho_Deva bjn_Arab bjn_Latn bod_Tibt "
    "bos_Latn bug_Latn bul_Cyrl cat_Latn ceb_Latn ces_Latn cjk_Latn ckb_Arab crh_Latn cym_Latn "
    "dan_Latn deu_Latn dik_Latn dyu_Latn dzo_Tibt ell_Grek eng_Latn epo_Latn est_Latn eus_Latn "
    "ewe_Latn fao_Latn pes_Arab fij_Latn fin_Latn fon_Latn fra_Latn fur_Latn fuv_Latn gla_Latn "
    "gle_Latn glg_Latn grn_Latn guj_Gujr hat_Latn hau_Latn heb_Hebr hin_Deva hne_Deva hrv_Latn "
    "hun_Latn hye_Armn ibo_Latn ilo_Latn ind_Latn isl_Latn ita_Latn jav_Latn jpn_Jpan kab_Latn "
    "kac_Latn kam_Latn kan_Knda kas_Arab kas_Deva kat_Geor knc_Arab knc_Latn kaz_Cyrl kbp_Latn "
    "kea_Latn khm_Khmr kik_Latn kin_Latn kir_Cyrl kmb_Latn kon_Latn kor_Hang kmr_Latn lao_Laoo "
    "lvs_Latn lij_Latn lim_Latn lin_Latn lit_Latn lmo_Latn ltg_Latn ltz_Latn lua_Latn lug_Latn "
    "luo_Latn lus_Latn mag_Deva mai_Deva mal_Mlym mar_Deva min_Latn mkd_Cyrl plt_Latn mlt_Latn "
    "mni_Beng khk_Cyrl mos_Latn mri_Latn zsm_Latn mya_Mymr nld_Latn nno_Latn nob_Latn npi_Deva "
    "nso_Latn nus_Latn nya_Latn oci_Latn gaz_Latn ory_Orya pag_Latn pan_Guru pap_Latn pol_Latn "
    "por_Latn prs_Arab pbt_Arab quy_Latn ron_Latn run_Latn rus_Cyrl sag_Latn san_Deva sat_Beng "
    "scn_Latn shn_Mymr sin_Sinh slk_Latn slv_Latn smo_Latn sna_Latn snd_Arab som_Latn sot_Latn "
    "spa_Latn als_Latn srd_Latn srp_Cyrl ssw_Latn sun_Latn swe_Latn swh_Latn szl_Latn tam_Taml "
    "tat_Cyrl tel_Telu tgk_Cyrl tgl_Latn tha_Thai tir_Ethi taq_Latn taq_Tfng tpi_Latn tsn_Latn "
    "tso_Latn tuk_Latn tum_Latn tur_Latn twi_Latn tzm_Tfng uig_Arab ukr_Cyrl umb_Latn urd_Arab "
    "uzn_Latn vec_Latn vie_Latn war_Latn wol_Latn xho_Latn ydd_Hebr yor_Latn yue_Hant zho_Hans "
    "zho_Hant zul_Latn").split()
M2M100_CODES = (
    "af am ar ast az ba be bg bn br bs ca ceb cs cy da de el en es et fa ff fi fr fy ga gd gl gu "
    "ha he hi hr ht hu hy id ig ilo is it ja jv ka kk km kn ko lb lg ln lo lt lv mg mk ml mn mr "
    "ms my ne nl no ns oc or pa pl ps pt ro ru sd si sk sl so sq sr ss su sv sw ta th tl tn tr uk "
    "ur uz vi wo xh yi yo zh zu").split()
assert len(MBART50_CODES) == 52 and len(NLLB_CODES) == 202 and len(M2M100_CODES) == 100


def clean_up_tokenization(text):
    for a, b in [(" .", "."), (" ?", "?"), (" !", "!"), (" ,", ","), (" ' ", "'"),
                 (" n't", "n't"), (" 'm", "'m"), (" 's", "'s"), (" 've", "'ve"),
                 (" 're", "'re")]:
        text = text.replace(a, b)
    return text


def _json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _spm(path):
    return spm.SentencePieceProcessor(model_file=path)


class Base:
    """decode(ids, skip_special_tokens=True): drop the special ids, ids -> tokens, join."""

    def __init__(self, directory):
        path = os.path.join(directory, "tokenizer_config.json")
        self.config = _json(path) if os.path.exists(path) else {}
        self.clean_up = bool(self.config.get("clean_up_tokenization_spaces", False))

    def decode(self, ids):
        tokens = [self.id_to_token(i) for i in ids if i not in self.special_ids]
        text = self.tokens_to_string([t for t in tokens if t is not None])
        return clean_up_tokenization(text) if self.clean_up else text

    def language_id(self, code):
        return None


class T5(Base):
    def __init__(self, directory):
        super().__init__(directory)
        self.sp = _spm(os.path.join(directory, "spiece.model"))
        self.extra_ids = self.config.get("extra_ids", 100)
        self.vocab_size = self.sp.get_piece_size() + self.extra_ids
        self.eos = self.sp.piece_to_id("</s>")
        self.special_ids = {self.eos, self.sp.piece_to_id("<unk>"), self.sp.piece_to_id("<pad>")}
        self.special_ids |= {self.vocab_size - 1 - n for n in range(self.extra_ids)}

    def encode(self, text, src_lang=None):
        return self.sp.encode(text) + [self.eos]  # legacy: sp ids, then eos

    def encode_target(self, text):
        return self.sp.encode(text)

    def id_to_token(self, i):
        if i < 0:
            return None
        if i < self.sp.get_piece_size():
            return self.sp.id_to_piece(i)
        return "<extra_id_%d>" % (self.vocab_size - 1 - i)

    def tokens_to_string(self, tokens):
        return self.sp.decode_pieces(tokens).strip()


class Marian(Base):
    def __init__(self, directory):
        super().__init__(directory)
        self.encoder = _json(os.path.join(directory, "vocab.json"))
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.target_encoder = self.encoder
        if self.config.get("separate_vocabs"):
            self.target_encoder = _json(os.path.join(directory, "target_vocab.json"))
            self.decoder = {v: k for k, v in self.target_encoder.items()}
        self.source = _spm(os.path.join(directory, "source.spm"))
        self.target = _spm(os.path.join(directory, "target.spm"))
        self.unk = self.encoder["<unk>"]
        self.eos = self.encoder["</s>"]
        self.special_tokens = ["</s>", "<unk>", "<pad>"] + list(
            self.config.get("additional_special_tokens") or [])
        self.special_ids = {self.encoder.get(t, self.unk) for t in self.special_tokens}

    def _tokenize(self, text, sp, encoder):
        code = []
        if text.startswith(">>") and text.find("<<") != -1:
            end = text.find("<<")
            code, text = [text[:end + 2]], text[end + 2:]
        pieces = code + sp.encode(text, out_type=str)
        return [encoder.get(p, encoder["<unk>"]) for p in pieces]

    def encode(self, text, src_lang=None):
        return self._tokenize(text, self.source, self.encoder) + [self.eos]

    def encode_target(self, text):
        # Target mode: target.spm, and target_vocab.json with separate_vocabs.
        return self._tokenize(text, self.target, self.target_encoder)

    def id_to_token(self, i):
        return self.decoder.get(i, "<unk>")

    def tokens_to_string(self, tokens):
        out, current = "", []
        for t in tokens:
            if t in self.special_tokens:
                out += self.target.decode_pieces(current) + t + " "
                current = []
            else:
                current.append(t)
        out += self.target.decode_pieces(current)
        return out.replace(SPIECE_UNDERLINE, " ").strip()

    def language_id(self, code):
        token = code if code.startswith(">>") else ">>%s<<" % code
        return self.encoder.get(token)


class Fairseq(Base):
    """mbart, mbart50, nllb: fairseq's <s> <pad> </s> <unk>, spm id + 1, codes, <mask>."""

    def __init__(self, directory, family):
        super().__init__(directory)
        self.family = family
        self.sp = _spm(os.path.join(directory, "sentencepiece.bpe.model"))
        codes = {"mbart": MBART_CODES, "mbart50": MBART50_CODES, "nllb": NLLB_CODES}[family]
        size = self.sp.get_piece_size()
        self.tokens_to_ids = {"<s>": 0, "<pad>": 1, "</s>": 2, "<unk>": 3}
        self.lang_to_id = {c: size + 1 + i for i, c in enumerate(codes)}
        self.tokens_to_ids.update(self.lang_to_id)
        self.tokens_to_ids["<mask>"] = size + 1 + len(codes)
        self.ids_to_tokens = {v: k for k, v in self.tokens_to_ids.items()}
        self.special_ids = set(self.ids_to_tokens)
        self.src_lang = self.config.get("src_lang") or ("eng_Latn" if family == "nllb" else "en_XX")
        self.language_first = family == "mbart50" or (
            family == "nllb" and not self.config.get("legacy_behaviour", False))

    def encode_target(self, text):
        ids = []
        for p in self.sp.encode(text, out_type=str):
            if p in self.tokens_to_ids:
                ids.append(self.tokens_to_ids[p])
            else:
                spm_id = self.sp.piece_to_id(p)
                ids.append(spm_id + 1 if spm_id else 3)
        return ids

    def encode(self, text, src_lang=None):
        lang = self.lang_to_id[src_lang or self.src_lang]
        ids = self.encode_target(text)
        return [lang] + ids + [2] if self.language_first else ids + [2, lang]

    def id_to_token(self, i):
        if i in self.ids_to_tokens:
            return self.ids_to_tokens[i]
        if 0 <= i - 1 < self.sp.get_piece_size():
            return self.sp.id_to_piece(i - 1)
        return None

    def tokens_to_string(self, tokens):
        if self.family == "mbart50":
            return self.sp.decode_pieces(tokens).strip()
        return "".join(tokens).replace(SPIECE_UNDERLINE, " ").strip()

    def language_id(self, code):
        return self.lang_to_id.get(code)


class M2M100(Base):
    def __init__(self, directory):
        super().__init__(directory)
        self.encoder = _json(os.path.join(directory, "vocab.json"))
        self.decoder = {v: k for k, v in self.encoder.items()}
        self.sp = _spm(os.path.join(directory, "sentencepiece.bpe.model"))
        codes = M2M100_CODES if self.config.get("language_codes", "m2m100") == "m2m100" else [
            "en", "ha", "is", "ja", "cs", "ru", "zh", "de"]
        n = len(self.encoder)
        self.lang_token_to_id = {"__%s__" % c: n + i for i, c in enumerate(codes)}
        self.id_to_lang_token = {v: k for k, v in self.lang_token_to_id.items()}
        self.unk = self.encoder["<unk>"]
        self.special_ids = {self.encoder.get(t, self.unk) for t in ["<s>", "</s>", "<pad>", "<unk>"]}
        self.special_ids |= set(self.id_to_lang_token)
        self.src_lang = self.config.get("src_lang") or "en"

    def encode_target(self, text):
        return [self.lang_token_to_id.get(p, self.encoder.get(p, self.unk))
                for p in self.sp.encode(text, out_type=str)]

    def encode(self, text, src_lang=None):
        lang = self.lang_token_to_id["__%s__" % (src_lang or self.src_lang)]
        return [lang] + self.encode_target(text) + [self.encoder["</s>"]]

    def id_to_token(self, i):
        if i in self.id_to_lang_token:
            return self.id_to_lang_token[i]
        return self.decoder.get(i, "<unk>")

    def tokens_to_string(self, tokens):
        return self.sp.decode_pieces(tokens)  # M2M100 does not strip

    def language_id(self, code):
        return self.lang_token_to_id.get(code if code.startswith("__") else "__%s__" % code)


def load(directory, family):
    if family == "t5":
        return T5(directory)
    if family in ("marian", "marian_separate"):
        return Marian(directory)
    if family in ("mbart", "mbart50", "nllb", "nllb_legacy"):
        return Fairseq(directory, "nllb" if family == "nllb_legacy" else family)
    if family == "m2m100":
        return M2M100(directory)
    if family == "bart":
        return Bart(directory)
    raise ValueError(family)


# ---------------------------------------------------------------- BART (GPT-2's byte-level BPE)

def bytes_to_unicode():
    """GPT-2's map of the 256 bytes onto printable characters."""
    bs = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("\u00a1"), ord("\u00ac") + 1)) +
          list(range(ord("\u00ae"), ord("\u00ff") + 1)))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, map(chr, cs)))


def _class(pred):
    import unicodedata
    parts, start = [], None
    for cp in range(0x110000):
        if pred(cp, unicodedata):
            if start is None:
                start = cp
        elif start is not None:
            parts.append((start, cp - 1))
            start = None
    return "".join(("\\U%08x" % a) if a == b else ("\\U%08x-\\U%08x" % (a, b)) for a, b in parts)


_PATTERN = None


def gpt2_pattern():
    """GPT-2's pre-tokenizer regex, with \\p{L}, \\p{N} and \\s spelled out as classes for
    Python's re (the `regex` module that transformers uses is not installed here)."""
    global _PATTERN
    if _PATTERN is None:
        import re
        letters = _class(lambda cp, u: u.category(chr(cp)).startswith("L"))
        numbers = _class(lambda cp, u: u.category(chr(cp)).startswith("N"))
        space = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000"
        _PATTERN = re.compile(
            "'s|'t|'re|'ve|'m|'ll|'d| ?[%s]+| ?[%s]+| ?[^%s%s%s]+|[%s]+(?![^%s])|[%s]+" % (
                letters, numbers, space, letters, numbers, space, space, space))
    return _PATTERN


def bpe_word(token, ranks):
    word = tuple(token)
    pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
    if not pairs:
        return [token]
    while True:
        bigram = min(pairs, key=lambda p: ranks.get(p, float("inf")))
        if bigram not in ranks:
            break
        first, second = bigram
        out, i = [], 0
        while i < len(word):
            try:
                j = word.index(first, i)
            except ValueError:
                out.extend(word[i:])
                break
            out.extend(word[i:j])
            i = j
            if word[i] == first and i < len(word) - 1 and word[i + 1] == second:
                out.append(first + second)
                i += 2
            else:
                out.append(word[i])
                i += 1
        word = tuple(out)
        if len(word) == 1:
            break
        pairs = {(word[i], word[i + 1]) for i in range(len(word) - 1)}
    return list(word)


class Bart(Base):
    def __init__(self, directory):
        super().__init__(directory)
        self.encoder = _json(os.path.join(directory, "vocab.json"))
        self.decoder = {v: k for k, v in self.encoder.items()}
        with open(os.path.join(directory, "merges.txt"), encoding="utf-8") as f:
            merges = [tuple(m.split()) for m in f.read().split("\n")[1:-1]]
        self.ranks = dict(zip(merges, range(len(merges))))
        self.byte_encoder = bytes_to_unicode()
        self.byte_decoder = {v: k for k, v in self.byte_encoder.items()}
        self.unk = self.encoder["<unk>"]
        self.special_ids = {self.encoder.get(t, self.unk)
                            for t in ["<s>", "</s>", "<unk>", "<pad>", "<mask>"]}
        self.add_prefix_space = bool(self.config.get("add_prefix_space", False))

    def encode_target(self, text):
        if self.add_prefix_space:
            text = " " + text
        ids = []
        for token in gpt2_pattern().findall(text):
            token = "".join(self.byte_encoder[b] for b in token.encode("utf-8"))
            ids += [self.encoder.get(t, self.unk) for t in bpe_word(token, self.ranks)]
        return ids

    def encode(self, text, src_lang=None):
        return [self.encoder["<s>"]] + self.encode_target(text) + [self.encoder["</s>"]]

    def id_to_token(self, i):
        return self.decoder.get(i)

    def tokens_to_string(self, tokens):
        data = bytearray()
        for t in tokens:
            for c in t:
                if c in self.byte_decoder:
                    data.append(self.byte_decoder[c])
                else:  # an added token's text: as UTF-8
                    data += c.encode("utf-8")
        return data.decode("utf-8", errors="replace")


def train_byte_bpe(lines, merges_wanted):
    """A tiny byte-level BPE trainer (most frequent pair, ties to the smaller pair), for test
    data only: merges in order."""
    byte_encoder = bytes_to_unicode()
    words = {}
    for line in lines:
        for token in gpt2_pattern().findall(line):
            w = tuple(byte_encoder[b] for b in token.encode("utf-8"))
            words[w] = words.get(w, 0) + 1
    merges = []
    for _ in range(merges_wanted):
        counts = {}
        for w, n in words.items():
            for i in range(len(w) - 1):
                counts[(w[i], w[i + 1])] = counts.get((w[i], w[i + 1]), 0) + n
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        merges.append(best)
        new_words = {}
        for w, n in words.items():
            out, i = [], 0
            while i < len(w):
                if i < len(w) - 1 and (w[i], w[i + 1]) == best:
                    out.append(w[i] + w[i + 1])
                    i += 2
                else:
                    out.append(w[i])
                    i += 1
            new_words[tuple(out)] = new_words.get(tuple(out), 0) + n
        words = new_words
    return merges
