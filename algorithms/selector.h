// Picks the algorithm for one operation. Every peer must pick the same one:
// the choice depends only on what all peers share (arguments, view size,
// measured topology, which every member holds identically), and the
// algorithm id travels in every frame, so a disagreement (e.g. different
// CHORUS_ALGO) is detected, not silent.
//
// Without an override, each applicable algorithm estimates its time from
// CostInputs (alpha per dependent round, beta per byte on the slowest link,
// gamma per message handled) and the cheapest wins.
//
// Override string (CHORUS_ALGO, chorus-bench --algo), UCC style:
//   "ring"                                      every collective that has a "ring"
//   "allreduce:0-64k:direct#64k-inf:ring"       per collective, per size range
//   "allreduce:rhd,broadcast:binomial"          several collectives
// Sizes accept k/m/g suffixes (binary); ranges are [lo, hi) in bytes of one
// rank's message (CollectiveArgs::messageBytes).
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

  // Empty spec = cost model only.
  static Result<Selector> create(const std::string& spec);
  // `in` carries n, topology and constants; bytes is set here.
  const AlgorithmInfo* select(Collective c, size_t bytes, const CostInputs& in) const;
  // Readable table of the choice per collective and size.
  std::string describe(const CostInputs& in) const;
  bool hasOverrides() const { return !rules_.empty(); }

 private:
  std::vector<Rule> rules_;
};

// "64k" -> 65536; "inf" -> SIZE_MAX.
Result<size_t> parseSize(const std::string& s);

// Cost-model constants for a view: from measured topology when available,
// else loopback-calibrated defaults; inflated when members share cores.
CostInputs costInputsFor(int n, const TopologyView* topo, int peersOnThisHost, int cores,
                         size_t segmentBytes, bool sharedMemory = false);

}  // namespace chorus::algo
