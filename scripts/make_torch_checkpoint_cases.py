#!/usr/bin/python3
"""Writes tests/data/torch_checkpoint/: small pytorch_model.bin files, valid and malformed,
for the C++ reader (engine/format/torch_checkpoint.cc, docs/torch-checkpoint.md).

    /usr/bin/python3 scripts/make_torch_checkpoint_cases.py            # (re)generate
    /usr/bin/python3 scripts/make_torch_checkpoint_cases.py --check    # regenerate into a
                                                                       # temporary dir, compare
    /usr/bin/python3 scripts/make_torch_checkpoint_cases.py --fuzz_seeds tests/fuzz/corpus/torch_checkpoint

Valid files come from torch.save itself (torch 1.13, Debian's python3-torch). Malformed ones
that torch would never write are assembled here byte by byte: the pickles with pickletools-level
opcodes (the ones that name os.system or builtins.eval are only ever written, never loaded) and
the zip archives with zipfile (stored entries, fixed timestamps, so the bytes are the same on
every run). Values are simple formulas that tests/engine/torch_checkpoint_test.cc recomputes.
"""

import argparse
import io
import os
import pickletools
import struct
import sys
import tempfile
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_OUT = os.path.join(HERE, "..", "tests", "data", "torch_checkpoint")
# zipfile's default for a ZipInfo is 1980-01-01; named here so that it is plainly fixed.
DATE = (1980, 1, 1, 0, 0, 0)


# ------------------------------------------------------------------ torch.save's own files

def base_tensors():
    """The valid file's tensors; the C++ test computes the same formulas."""
    base = (torch.arange(12, dtype=torch.float32) - 5) * 0.25  # [-1.25, -1, ..., 1.5]
    base = base.reshape(3, 4)
    return {
        "f32": base,
        "f32.alias": base,      # the same tensor: one storage, two names
        "f32.row1": base[1],    # a view: storage offset 4, contiguous
        "f16": (torch.arange(6, dtype=torch.float32) * 0.5 - 1).to(torch.float16).reshape(2, 3),
        "bf16": (torch.arange(4, dtype=torch.float32) * -1.5).to(torch.bfloat16),
        "i64": torch.arange(5, dtype=torch.int64),
        "scalar": torch.tensor(2.5),
        "empty": torch.zeros(0, 3),
    }


def torch_save_bytes(obj, stem=None, **kwargs):
    """torch.save's bytes. With a stem the archive's top folder is the stem (torch 1.13
    names it after the file); without, torch writes to a buffer and names it "archive"."""
    if stem is None:
        buf = io.BytesIO()
        torch.save(obj, buf, **kwargs)
        return buf.getvalue()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, stem + ".bin")
        torch.save(obj, path, **kwargs)
        with open(path, "rb") as f:
            return f.read()


def stable_legacy_keys(data):
    """The legacy format keys storages by their address in memory, which differs from run to
    run; renames the (single) key to "0" so the file is the same every time."""
    key = None
    for op, arg, _ in pickletools.genops(data[data.index(b"ctorch\nFloatStorage"):]):
        if op.name == "BINUNICODE":
            key = arg
            break
    old = s(key)
    assert data.count(old) == 2, "the key appears in the pickle and the storage list"
    return data.replace(old, s("0"))


def linear_state_dict():
    """An nn.Module's state_dict: an OrderedDict with `_metadata`, pickled with BUILD."""
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 2)
    with torch.no_grad():
        layer.weight.copy_(torch.arange(6, dtype=torch.float32).reshape(2, 3) / 8)
        layer.bias.copy_(torch.tensor([0.5, -0.5]))
    return layer.state_dict()


# ------------------------------------------------------------------ hand-made files

def s(text):  # BINUNICODE
    b = text.encode()
    return b"X" + struct.pack("<I", len(b)) + b


def i(n):  # BININT1 / BININT2 / BININT
    if 0 <= n < 256:
        return b"K" + bytes([n])
    if 0 <= n < 65536:
        return b"M" + struct.pack("<H", n)
    return b"J" + struct.pack("<i", n)


def tup(values):
    return b"(" + b"".join(i(v) for v in values) + b"t"


def glob(module, name):  # GLOBAL
    return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def tensor(storage_type, key, numel, offset, size, stride):
    """_rebuild_tensor_v2(persistent storage id, offset, size, stride, False, OrderedDict())
    as torch 1.13 pickles it (without its memo puts)."""
    pid = b"(" + s("storage") + glob("torch", storage_type) + s(key) + s("cpu") + i(numel) + b"tQ"
    hooks = glob("collections", "OrderedDict") + b")R"
    args = b"(" + pid + i(offset) + tup(size) + tup(stride) + b"\x89" + hooks + b"t"
    return glob("torch._utils", "_rebuild_tensor_v2") + args + b"R"


def state_dict(items):
    """{name: value} with values given as pickle bytes; protocol 2, as torch.save writes."""
    return b"\x80\x02}(" + b"".join(s(k) + v for k, v in items) + b"u."


def zip_bytes(top, pickle, storages, compress=()):
    """A torch-style zip: <top>/data.pkl, <top>/data/<key>, <top>/version. Entries named in
    `compress` are deflated (which torch never does)."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        entries = [("data.pkl", pickle)] + [("data/" + k, v) for k, v in storages.items()]
        entries.append(("version", b"3\n"))
        for name, data in entries:
            info = zipfile.ZipInfo(top + "/" + name, date_time=DATE)
            info.compress_type = zipfile.ZIP_DEFLATED if name in compress else zipfile.ZIP_STORED
            z.writestr(info, data)
    return buf.getvalue()


def floats(values):
    return struct.pack("<%df" % len(values), *values)


def call_of(module, name, argument):
    """A state dict entry whose value is module.name(argument): what a malicious .bin does."""
    return glob(module, name) + s(argument) + b"\x85R"


def cases():
    """{file name: bytes}."""
    out = {}
    valid = torch_save_bytes(base_tensors(), "valid")
    out["valid.bin"] = valid
    out["valid_state_dict.bin"] = torch_save_bytes(linear_state_dict())  # top "archive"

    # Would run code: refused at the GLOBAL, before anything could be called.
    payload = "touch /tmp/attnserve-torch-checkpoint-pwned"
    for file, module, name in (("global_os_system.bin", "os", "system"),
                               ("global_posix_system.bin", "posix", "system"),
                               ("global_builtins_eval.bin", "builtins", "eval")):
        pickle = state_dict([("weight", call_of(module, name, payload))])
        out[file] = zip_bytes(file[:-4], pickle, {})

    # Not a zip: torch.save's format before 1.6.
    out["legacy.bin"] = stable_legacy_keys(torch_save_bytes(
        {"w": torch.ones(2)}, "legacy", _use_new_zipfile_serialization=False))
    # A valid file's entries with data.pkl deflated.
    with zipfile.ZipFile(io.BytesIO(valid)) as z:
        storages = {n[len("valid/data/"):]: z.read(n) for n in z.namelist()
                    if n.startswith("valid/data/")}
        out["compressed.bin"] = zip_bytes("compressed", z.read("valid/data.pkl"), storages,
                                          compress=("data.pkl",))
    # The first half of a valid file: no end of central directory record.
    out["truncated.bin"] = valid[: len(valid) // 2]

    # A [8] tensor in a storage of 4 floats.
    out["short_storage.bin"] = zip_bytes(
        "short_storage", state_dict([("w", tensor("FloatStorage", "0", 4, 0, (8,), (1,)))]),
        {"0": floats([1, 2, 3, 4])})
    # A tensor at offset 2 that runs one element past its storage.
    out["offset_past_storage.bin"] = zip_bytes(
        "offset_past_storage",
        state_dict([("w", tensor("FloatStorage", "0", 4, 2, (3,), (1,)))]),
        {"0": floats([1, 2, 3, 4])})
    # The pickle says 8 elements, the entry holds 4.
    out["storage_entry_short.bin"] = zip_bytes(
        "storage_entry_short",
        state_dict([("w", tensor("FloatStorage", "0", 8, 0, (4,), (1,)))]),
        {"0": floats([1, 2, 3, 4])})
    # A storage key without its data/<key> entry.
    out["missing_storage.bin"] = zip_bytes(
        "missing_storage", state_dict([("w", tensor("FloatStorage", "7", 4, 0, (4,), (1,)))]),
        {"0": floats([1, 2, 3, 4])})
    # torch.save of a transposed tensor: stride (1, 3) for size (3, 2).
    out["non_contiguous.bin"] = torch_save_bytes(
        {"w": torch.arange(6, dtype=torch.float32).reshape(2, 3).t()}, "non_contiguous")
    return out


def write(out_dir):
    os.makedirs(out_dir, exist_ok=True)
    for name, data in sorted(cases().items()):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return 0


SEPARATOR = b"\n--8<--\n"  # tests/fuzz/fuzz_util.h's kSeparator


def fuzz_seeds(out_dir):
    """torch_checkpoint_fuzzer's seeds: small whole files, and the split form (data.pkl, then
    storages "0", "1", ... by the separator) of the valid ones and of hand-made pickles."""
    os.makedirs(out_dir, exist_ok=True)
    made = cases()
    seeds = {name[:-4]: made[name] for name in (
        "valid.bin", "valid_state_dict.bin", "non_contiguous.bin", "short_storage.bin",
        "global_os_system.bin", "compressed.bin")}
    for name in ("valid.bin", "valid_state_dict.bin"):
        with zipfile.ZipFile(io.BytesIO(made[name])) as z:
            top = z.namelist()[0].split("/")[0]
            pickle = z.read(top + "/data.pkl")
            keys = sorted(n[len(top) + 6:] for n in z.namelist() if n.startswith(top + "/data/"))
            # The fuzzer names storages by position; rename the keys to match.
            parts = [pickle]
            for position, key in enumerate(keys):
                assert key == str(position), "torch numbers storages 0, 1, ..."
                parts.append(z.read(top + "/data/" + key))
            seeds["split_" + name[:-4]] = SEPARATOR.join(parts)
    seeds["split_every_opcode"] = SEPARATOR.join([state_dict([
        ("a", tensor("HalfStorage", "0", 2, 0, (2,), (1,))),
        ("b", b"\x8a\x02\x7f\xff"),
        ("c", b"G\x3f\xf8\x00\x00\x00\x00\x00\x00"),
        ("d", b"]q\x00(K\x01N\x88\x89e"),
        ("e", b"\x8c\x02hi\x85"),
    ]), b"\x00\x3c\x00\xbc"])
    for name, data in sorted(seeds.items()):
        with open(os.path.join(out_dir, name), "wb") as f:
            f.write(data)
    return 0


def check(out_dir):
    """Regenerates and compares byte for byte; checks that torch itself reads the valid file
    as meant (with weights_only=True)."""
    fails = []
    fresh = cases()
    names = set(os.listdir(out_dir)) if os.path.isdir(out_dir) else set()
    for name in sorted(set(fresh) | names):
        path = os.path.join(out_dir, name)
        if name not in fresh:
            fails.append(f"{path}: not made by this script")
        elif not os.path.exists(path):
            fails.append(f"{path}: missing")
        else:
            with open(path, "rb") as f:
                if f.read() != fresh[name]:
                    fails.append(f"{path}: differs from a fresh regeneration")
    loaded = torch.load(io.BytesIO(fresh["valid.bin"]), weights_only=True)
    for name, want in base_tensors().items():
        if not torch.equal(loaded[name], want):
            fails.append(f"valid.bin: {name} does not load back equal")
    # The files that name os.system / builtins.eval are never given to any loader here.
    for f in fails:
        print("FAIL", f)
    print(f"{len(fresh)} files, {len(fails)} failure(s)")
    return 1 if fails else 0


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--check", action="store_true")
    ap.add_argument("--fuzz_seeds", metavar="DIR", help="write the fuzz target's seeds instead")
    a = ap.parse_args()
    if a.fuzz_seeds:
        return fuzz_seeds(a.fuzz_seeds)
    return check(a.out) if a.check else write(a.out)


if __name__ == "__main__":
    sys.exit(main())
