#pragma once

namespace attnserve::engine {

// Process-wide malloc policy for programs that serve a model (the server, the
// engine benchmark): a fixed mmap threshold, so that large blocks freed by
// oneDNN and by finished requests go back to the OS instead of staying resident
// (glibc otherwise raises its threshold after large frees). Tensors of 1 MB or
// more are mapped directly anyway (tensor.cc); this covers oneDNN's scratch and
// other large heap blocks. Call once, early in main.
void UseServingAllocationPolicy();

}  // namespace attnserve::engine
