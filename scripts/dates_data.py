"""Data for the bundled date-normalisation model (models/dates): human-written dates -> ISO.

Dev tool (Debian's /usr/bin/python3; standard library only). See docs/dates-model.md.

Every date from 1900-01-01 to 2099-12-31 can be rendered in many human ways (`render`); the
target is always ISO `YYYY-MM-DD`. Dates are split by a hash of their ISO string (`split`), so a
date is either a training date, a validation date (early stopping) or a test date (the
held-out file), whatever way it is written:

    sha256(iso)[:8] as a big-endian integer, mod 1000:  < 50 -> "test" (5%),
                                                        < 60 -> "valid" (1%), else "train".

Two-digit years use a fixed pivot: 00-49 -> 2000-2049, 50-99 -> 1950-1999. So only dates in
1950..2049 are ever written with a two-digit year.

    /usr/bin/python3 scripts/dates_data.py --samples 20            # print random examples
    /usr/bin/python3 scripts/dates_data.py --heldout_out tests/data/dates_heldout.tsv

The held-out file has one distinct test date per line (random order), `source<TAB>target`,
in random formats (seeded); sources never start or end with whitespace and contain no tab.
"""

import argparse
import datetime
import hashlib
import random

FIRST_DATE = datetime.date(1900, 1, 1)
LAST_DATE = datetime.date(2099, 12, 31)
TWO_DIGIT_PIVOT = 50  # yy < 50 -> 20yy, yy >= 50 -> 19yy
TWO_DIGIT_FIRST, TWO_DIGIT_LAST = 1950, 2049

SPECIALS = ["<pad>", "<s>", "</s>"]  # ids 0, 1, 2
PAD_ID, BOS_ID, EOS_ID = 0, 1, 2
MAX_SOURCE_CHARS = 60  # render() guarantees this; + EOS stays well inside max_positions 64

WEEKDAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
WEEKDAYS_SHORT = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August",
          "September", "October", "November", "December"]
MONTHS_SHORT = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
                "Dec"]
WORDS = ["the", "of"]
PUNCTUATION = " ,.-/'"


def all_dates():
    d, one = FIRST_DATE, datetime.timedelta(days=1)
    out = []
    while d <= LAST_DATE:
        out.append(d)
        d += one
    return out


def iso(d):
    return f"{d.year:04d}-{d.month:02d}-{d.day:02d}"


def split(d):
    """'train' | 'valid' | 'test' for a date (or an ISO string), from a hash of the ISO date."""
    s = d if isinstance(d, str) else iso(d)
    h = int.from_bytes(hashlib.sha256(s.encode("ascii")).digest()[:8], "big") % 1000
    return "test" if h < 50 else "valid" if h < 60 else "train"


def two_digit_ok(d):
    return TWO_DIGIT_FIRST <= d.year <= TWO_DIGIT_LAST


def expand_two_digit(yy):
    """The documented pivot: 00-49 -> 20yy, 50-99 -> 19yy."""
    return 2000 + yy if yy < TWO_DIGIT_PIVOT else 1900 + yy


def ordinal(n):
    if 10 <= n % 100 <= 20:
        return f"{n}th"
    return f"{n}" + {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")


def vocabulary():
    """Token list (index = id): the three specials, then every character render() or iso()
    can produce, sorted by code point (space is one of them)."""
    chars = set("0123456789") | set(PUNCTUATION)
    for w in WEEKDAYS + WEEKDAYS_SHORT + MONTHS + MONTHS_SHORT + WORDS + ["st", "nd", "rd", "th"]:
        chars |= set(w.lower()) | set(w.upper()) | set(w.title())
    return SPECIALS + sorted(chars)


def read_vocab(path):
    """vocab.txt read verbatim (no trimming: one token is a single space): line i = id i."""
    with open(path, encoding="utf-8", newline="") as f:
        text = f.read()
    if not text.endswith("\n"):
        raise ValueError(f"{path}: last line has no newline")
    return text[:-1].split("\n")


def encode_source(text, vocab, add_eos=True):
    """The server's character tokenizer: one id per character, EOS appended (the model's
    add_eos_to_source). An unknown character raises ValueError naming it."""
    stoi = {t: i for i, t in enumerate(vocab) if i >= len(SPECIALS)}
    ids = []
    for c in text:
        if c not in stoi:
            raise ValueError(f"unknown character {c!r} in {text!r}")
        ids.append(stoi[c])
    return ids + [EOS_ID] if add_eos else ids


def decode_ids(ids, vocab):
    """Output ids -> text: concatenate the characters, skipping special tokens."""
    return "".join(vocab[i] for i in ids if i >= len(SPECIALS))


# --- rendering ----------------------------------------------------------------------------
def _case(rng):
    r = rng.random()
    return "lower" if r < 0.25 else "upper" if r < 0.45 else "title"


def _apply_case(word, case):
    return word.lower() if case == "lower" else word.upper() if case == "upper" else word


def _year(d, rng, apostrophe_only=True):
    """Four digits, or (1950-2049 only) two digits: with an apostrophe ('26), or, when
    apostrophe_only is False (hyphen/slash forms like 23-Nov-26), sometimes without."""
    if two_digit_ok(d) and rng.random() < 0.25:
        yy = f"{d.year % 100:02d}"
        return yy if not apostrophe_only and rng.random() < 0.5 else "'" + yy
    return f"{d.year:04d}"


def _weekday(d, rng, case):
    """'' or a weekday name (full or short, with optional period after short) and the
    separator that follows it."""
    wd = d.weekday()
    r = rng.random()
    if r < 0.5:
        name = WEEKDAYS[wd]
    else:
        name = WEEKDAYS_SHORT[wd]
        if rng.random() < 0.2:
            name += "."
    return _apply_case(name, case) + rng.choice([", ", ", ", " ", ","])


def _month(d, rng, case):
    if rng.random() < 0.5:
        name = MONTHS[d.month - 1]
    else:
        name = MONTHS_SHORT[d.month - 1]
        if name != "May" and rng.random() < 0.2:
            name += "."
    return _apply_case(name, case)


def _day_word(d, rng, case):
    """Day in a worded date: 23, 23rd, or zero-padded 05."""
    r = rng.random()
    if r < 0.45:
        return _apply_case(ordinal(d.day), case), True
    if r < 0.85 or d.day >= 10:
        return str(d.day), False
    return f"{d.day:02d}", False


def _render_words(d, rng):
    case = _case(rng)
    with_wd = rng.random() < 0.45
    wd = _weekday(d, rng, case) if with_wd else ""
    month = _month(d, rng, case)
    day, is_ord = _day_word(d, rng, case)
    year = _year(d, rng)
    the = _apply_case("the", case) + " "
    of = " " + _apply_case("of", case)
    r = rng.random()
    if r < 0.45:  # day month year: "23 November 2026", "the 23rd of November, 2026"
        if is_ord and rng.random() < 0.3:
            core = (the if rng.random() < 0.5 else "") + day + of + " " + month
        else:
            core = day + " " + month
        return wd + core + rng.choice([" ", " ", " ", ", "]) + year
    if r < 0.85:  # month day year: "November 23, 2026", "Nov 23rd 2026", "November the 23rd, 2026"
        core = month + " " + (the if is_ord and rng.random() < 0.1 else "") + day
        return wd + core + rng.choice([", ", ", ", " ", ","]) + year
    if r < 0.95:  # hyphens or slashes, no weekday: "23-Nov-2026", "23/nov/26", "Nov-23-2026"
        sep = rng.choice("-/")
        day = str(d.day) if rng.random() < 0.5 else f"{d.day:02d}"
        month = _month(d, rng, case).rstrip(".")
        year = _year(d, rng, apostrophe_only=False)
        if rng.random() < 0.7:
            return sep.join([day, month, year])
        return sep.join([month, day, year])
    # year first, with words (four-digit year only, so "26 Nov 23" stays day-month-year)
    return wd + f"{d.year:04d}" + rng.choice([" ", ", "]) + month + " " + day


def _render_numeric(d, rng):
    y, m, dd = d.year, d.month, d.day
    r = rng.random()
    if r < 0.35:
        s = f"{y:04d}-{m:02d}-{dd:02d}"  # ISO 8601
    elif r < 0.55:
        s = f"{y:04d}{m:02d}{dd:02d}"  # compact YYYYMMDD
    elif r < 0.70:  # year first with slashes or dots, always year-month-day
        sep = rng.choice("/.")
        s = f"{y:04d}{sep}{m:02d}{sep}{dd:02d}" if rng.random() < 0.7 else f"{y}{sep}{m}{sep}{dd}"
    else:  # European dots: day.month.year, padded or not; two-digit year with the pivot
        pad = rng.random() < 0.6
        ds, ms = (f"{dd:02d}", f"{m:02d}") if pad else (str(dd), str(m))
        if two_digit_ok(d) and rng.random() < 0.3:
            ys = f"{y % 100:02d}"
        else:
            ys = f"{y:04d}"
        s = f"{ds}.{ms}.{ys}"
    if rng.random() < 0.12:  # a weekday in front of a numeric date
        s = _weekday(d, rng, _case(rng)).rstrip(", ") + rng.choice([", ", " "]) + s
    return s


def _extra_spaces(s, rng):
    """Punctuation variant: some single spaces doubled (never at either end)."""
    if " " not in s or rng.random() >= 0.1:
        return s
    return "".join(("  " if c == " " and rng.random() < 0.5 else c) for c in s)


def render(d, rng):
    """One random human rendering of date d (rng: random.Random). No leading/trailing spaces."""
    s = _render_words(d, rng) if rng.random() < 0.68 else _render_numeric(d, rng)
    s = _extra_spaces(s, rng)
    assert s == s.strip() and "\t" not in s and len(s) <= MAX_SOURCE_CHARS, s
    return s


# --- checks -------------------------------------------------------------------------------
_MONTH_LOOKUP = {}
for _i, (_f, _s) in enumerate(zip(MONTHS, MONTHS_SHORT)):
    _MONTH_LOOKUP[_f.lower()] = _MONTH_LOOKUP[_s.lower()] = _i + 1


def parse(s):
    """An independent parser of everything render() writes (used to check the generator):
    returns the date, or raises ValueError. Words decide the order; the only numeric orders
    are year-first (ISO, YYYYMMDD, Y/M/D, Y.M.D) and European day.month.year."""
    import re
    t = s.lower().replace(",", " ").replace("'", " '")
    t = re.sub(r"\b(mon|tue|wed|thu|fri|sat|sun)[a-z]*\.?", " ", t)
    toks = [x for x in re.split(r"[\s\-/]+", t.replace("the ", " ").replace(" of ", " "))
            if x]
    toks = [x.rstrip(".") if not re.fullmatch(r"[\d.]+", x) else x for x in toks]

    def year(x):
        if x.startswith("'") or len(x) == 2:
            return expand_two_digit(int(x.lstrip("'")))
        if len(x) != 4:
            raise ValueError(s)
        return int(x)

    def day(x):
        return int(re.fullmatch(r"(\d{1,2})(st|nd|rd|th)?", x).group(1))

    if len(toks) == 1:
        x = toks[0]
        if re.fullmatch(r"\d{8}", x):
            return datetime.date(int(x[:4]), int(x[4:6]), int(x[6:]))
        if re.fullmatch(r"\d{4}\.\d{1,2}\.\d{1,2}", x):
            y, m, dd = x.split(".")
            return datetime.date(int(y), int(m), int(dd))
        if re.fullmatch(r"\d{1,2}\.\d{1,2}\.(\d{2}|\d{4})", x):
            dd, m, y = x.split(".")
            return datetime.date(year(y), int(m), int(dd))
        raise ValueError(s)
    if len(toks) == 3 and all(re.fullmatch(r"\d+", x) for x in toks) and len(toks[0]) == 4:
        return datetime.date(int(toks[0]), int(toks[1]), int(toks[2]))
    months = [i for i, x in enumerate(toks) if x in _MONTH_LOOKUP]
    if len(toks) != 3 or len(months) != 1:
        raise ValueError(s)
    m = _MONTH_LOOKUP[toks[months[0]]]
    if months[0] == 1 and re.fullmatch(r"\d{4}", toks[0]):  # year month day
        return datetime.date(int(toks[0]), m, day(toks[2]))
    if months[0] == 1:  # day month year
        return datetime.date(year(toks[2]), m, day(toks[0]))
    if months[0] == 0:  # month day year
        return datetime.date(year(toks[2]), m, day(toks[1]))
    raise ValueError(s)


def self_check(n=200000, seed=1):
    """Renders n random dates and checks: the independent parser gets the date back, weekday
    names are right (parse() ignores them, so checked here), every character is in the
    vocabulary, lengths fit."""
    rng = random.Random(seed)
    dates = all_dates()
    vocab = set(vocabulary()[len(SPECIALS):])
    longest = ""
    for _ in range(n):
        d = rng.choice(dates)
        s = render(d, rng)
        if parse(s) != d:
            raise AssertionError(f"{s!r} parses to {parse(s)}, not {d}")
        low = s.lower()
        for i, (full, short) in enumerate(zip(WEEKDAYS, WEEKDAYS_SHORT)):
            if short.lower() in low and i != d.weekday():
                raise AssertionError(f"{s!r}: wrong weekday for {d}")
        bad = set(s + iso(d)) - vocab
        if bad:
            raise AssertionError(f"{s!r}: characters {bad} not in the vocabulary")
        longest = max(longest, s, key=len)
    return longest


def heldout_lines(n, seed):
    """n lines (source, target) for n distinct test dates in random order (so any prefix of
    the file is a fair sample), formats seeded."""
    rng = random.Random(seed)
    test = [d for d in all_dates() if split(d) == "test"]
    if n > len(test):
        raise ValueError(f"only {len(test)} test dates")
    chosen = rng.sample(test, n)
    return [(render(d, rng), iso(d)) for d in chosen]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--samples", type=int, default=0, help="print this many random examples")
    ap.add_argument("--seed", type=int, default=20261123)
    ap.add_argument("--heldout_out", help="write the held-out TSV here")
    ap.add_argument("--heldout_n", type=int, default=3000)
    ap.add_argument("--check", type=int, default=200000,
                    help="self-check this many random renderings first (0: skip)")
    args = ap.parse_args()
    if args.check:
        longest = self_check(args.check)
        print(f"self-check: {args.check} renderings parse back; longest {len(longest)} chars: "
              f"{longest!r}")
    dates = all_dates()
    counts = {k: sum(1 for d in dates if split(d) == k) for k in ("train", "valid", "test")}
    print(f"{len(dates)} dates: {counts}; vocabulary {len(vocabulary())} tokens")
    rng = random.Random(args.seed)
    for _ in range(args.samples):
        d = rng.choice(dates)
        print(f"{render(d, rng)}\t{iso(d)}\t{split(d)}")
    if args.heldout_out:
        lines = heldout_lines(args.heldout_n, args.seed)
        with open(args.heldout_out, "w", encoding="utf-8", newline="\n") as f:
            for src, tgt in lines:
                f.write(f"{src}\t{tgt}\n")
        print(f"wrote {len(lines)} lines to {args.heldout_out}")


if __name__ == "__main__":
    main()
