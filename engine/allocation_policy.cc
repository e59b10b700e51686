#include "engine/allocation_policy.h"

#include <malloc.h>

namespace attnserve::engine {

void UseServingAllocationPolicy() { mallopt(M_MMAP_THRESHOLD, 256 * 1024); }

}  // namespace attnserve::engine
