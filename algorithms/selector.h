// Picks the algorithm for one operation from its collective, message size
// and world size. Every peer must pick the same one: the choice depends only
// on arguments all peers share, and the algorithm id travels in every frame
// so a disagreement (e.g. different CHORUS_ALGO) is detected, not silent.
//
// Override string (CHORUS_ALGO, chorus-bench --algo), UCC style:
//   "ring"                                  one algorithm for everything
//   "allreduce:0-64k:direct#64k-inf:ring"   per collective, per size range
// Sizes accept k/m/g suffixes (binary); ranges are [lo, hi) in bytes.
#pragma once

#include <string>
#include <vector>

#include "algorithms/algorithm.h"

namespace chorus::algo {

class Selector {
 public:
  struct Rule {
    Collective collective;
    size_t lo, hi;  // bytes, [lo, hi)
    const AlgorithmInfo* algo;
  };

  // Empty spec = defaults only.
  static Result<Selector> create(const std::string& spec);
  const AlgorithmInfo* select(Collective c, size_t bytes, int worldSize) const;
  // Human-readable table of the choice per size for a world size.
  std::string describe(Collective c, int worldSize) const;

 private:
  std::vector<Rule> rules_;
};

// "64k" -> 65536; "inf" -> SIZE_MAX.
Result<size_t> parseSize(const std::string& s);

}  // namespace chorus::algo
