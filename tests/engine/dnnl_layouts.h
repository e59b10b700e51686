#pragma once
// Running a test under each of the oneDNN body's weight layouts, whichever the
// host would choose (DnnlWeightLayoutInUse): the layout is fixed when weights
// are packed, so the body loads its models or packs its weights itself.

#include <optional>

#include "engine/ops/op_bodies.h"
#include "gtest/gtest.h"

namespace attnserve::engine::testing {

inline const char* DnnlWeightLayoutName(internal::DnnlWeightLayout layout) {
  return layout == internal::DnnlWeightLayout::kPanels ? "Panels" : "Plain";
}

// Calls body() with each layout forced in turn, under a trace naming it; the
// host's choice is back afterwards (a failed ASSERT returns from body only).
template <typename Body>
void ForEachDnnlWeightLayout(Body body) {
  for (auto layout : {internal::DnnlWeightLayout::kPlain,
                      internal::DnnlWeightLayout::kPanels}) {
    SCOPED_TRACE(DnnlWeightLayoutName(layout));
    internal::ForceDnnlWeightLayoutForTesting(layout);
    body();
    internal::ForceDnnlWeightLayoutForTesting(std::nullopt);
  }
}

}  // namespace attnserve::engine::testing
