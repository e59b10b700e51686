#pragma once
// Pure helpers that shape an encoder batch: sources sorted by length so that
// padding is small, cut into chunks whose padded size is bounded so that the
// encoder's activations stay small whatever the number of sources admitted at
// once.

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"

namespace attnserve::engine {

// Indices of `lengths` ordered by length (shortest first; equal lengths keep
// input order).
std::vector<size_t> OrderByLength(absl::Span<const int32_t> lengths);

// Cuts sources, already ordered by length, into consecutive [begin, end) chunks
// such that (end - begin) * (longest length in the chunk) <= max_rows; a single
// source longer than max_rows gets a chunk of its own.
std::vector<std::pair<size_t, size_t>> PlanEncoderChunks(
    absl::Span<const int32_t> sorted_lengths, int64_t max_rows);

}  // namespace attnserve::engine
