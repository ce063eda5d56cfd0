// Checks shared by the multi-process tests that run worker scenarios
// printing CASE lines (sweep, colls): header-only, uses GoogleTest.
#pragma once

#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>

#include "tests/common/harness.h"

namespace chorus_test {

// Every worker exited 0 and ran the same number of cases (at least
// minCases); every CASE line is exact (rc=0, wrong=0) and its result hash
// ("-" when the case has none) is the same on every worker.
inline void expectAllCasesAgree(Workers& w, size_t minCases) {
  std::map<std::string, std::set<std::string>> hashes;
  size_t cases = 0;
  for (size_t i = 0; i < w.procs.size(); ++i) {
    auto& p = w.procs[i];
    EXPECT_EQ(p->exitCode(), 0) << "worker " << i << "\n" << w.dump();
    auto lines = p->lines("CASE ");
    if (i == 0) cases = lines.size();
    EXPECT_EQ(lines.size(), cases) << "worker " << i << " ran a different number of cases";
    for (const auto& l : lines) {
      auto f = fields(l);
      EXPECT_EQ(f["rc"], "0") << l;
      EXPECT_EQ(f["wrong"], "0") << l;
      if (f["hash"] != "-") hashes[f["name"]].insert(f["hash"]);
    }
  }
  EXPECT_GE(cases, minCases);
  for (const auto& [name, set] : hashes)
    EXPECT_EQ(set.size(), 1u) << "peers disagree on the bytes of " << name;
}

}  // namespace chorus_test
