"""Shared machinery of the per-family tensor mappings: take a Hugging Face tensor (or one
of a tied group's aliases) under an attnserve name, check its shape, and at the end refuse
any tensor of the checkpoint that nothing took."""

import collections

import torch

from .errors import ConvertError


class TensorPlan:
    def __init__(self, sd, source):
        self.sd, self.source = sd, source
        self.used = set()
        self.out = collections.OrderedDict()  # attnserve name -> tensor (as stored)

    def _check(self, name, t, shape):
        if tuple(t.shape) != tuple(shape):
            raise ConvertError(f"{self.source}: tensor {name} has shape {list(t.shape)}, "
                               f"expected {list(shape)}")
        if not t.is_floating_point():
            raise ConvertError(f"{self.source}: tensor {name} has dtype {t.dtype}; weights "
                               "must be floating point")

    def tied(self, names, shape, what):
        """The one tensor a tied group stores under any non-empty subset of its aliases;
        several present must be equal, else the file is ambiguous."""
        found = [n for n in names if n in self.sd]
        if not found:
            raise ConvertError(f"{self.source}: missing {what}: none of {', '.join(names)}")
        first = self.sd[found[0]]
        self._check(found[0], first, shape)
        for n in found[1:]:
            t = self.sd[n]
            if tuple(t.shape) != tuple(first.shape) or not torch.equal(t.to(first.dtype), first):
                raise ConvertError(f"{self.source}: tied tensors {found[0]} and {n} differ")
        self.used.update(found)
        return first

    def get(self, name, shape):
        if name not in self.sd:
            raise ConvertError(f"{self.source}: missing tensor {name} (shape {list(shape)})")
        t = self.sd[name]
        self._check(name, t, shape)
        self.used.add(name)
        return t

    def put(self, ours, t):
        self.out[ours] = t

    def copy(self, ours, theirs, shape):
        self.put(ours, self.get(theirs, shape))

    def ignore(self, *names):
        """Tensors HF itself ignores on load (non-persistent buffers old files carry)."""
        self.used.update(n for n in names if n in self.sd)

    def finish(self):
        unknown = sorted(set(self.sd) - self.used)
        if unknown:
            more = f" (and {len(unknown) - 5} more)" if len(unknown) > 5 else ""
            raise ConvertError(f"{self.source}: unexpected tensors: "
                               f"{', '.join(unknown[:5])}{more}")
        return self.out
