// The table of algorithms. Adding one: write algorithms/<collective>/<name>.cc
// defining an AlgorithmInfo, declare it here and list it once below.
#include "algorithms/algorithm.h"

namespace chorus::algo {

extern const AlgorithmInfo kAllReduceRing;
extern const AlgorithmInfo kAllReduceDirect;
extern const AlgorithmInfo kAllReduceTwoPhase;

const char* collectiveName(Collective c) {
  switch (c) {
    case Collective::kAllReduce:
      return "allreduce";
  }
  return "?";
}

const std::vector<const AlgorithmInfo*>& allAlgorithms() {
  static const std::vector<const AlgorithmInfo*> kAll = {&kAllReduceRing, &kAllReduceDirect,
                                                         &kAllReduceTwoPhase};
  return kAll;
}

const AlgorithmInfo* findAlgorithm(Collective c, const std::string& name) {
  for (const AlgorithmInfo* a : allAlgorithms())
    if (a->collective == c && name == a->name) return a;
  return nullptr;
}

const AlgorithmInfo* findAlgorithm(uint8_t id) {
  for (const AlgorithmInfo* a : allAlgorithms())
    if (a->id == id) return a;
  return nullptr;
}

}  // namespace chorus::algo
