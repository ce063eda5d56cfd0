#include "algorithms/selector.h"

#include <algorithm>
#include <cstdint>
#include <sstream>

namespace chorus::algo {

Result<size_t> parseSize(const std::string& s) {
  if (s == "inf" || s == "max") return SIZE_MAX;
  if (s.empty()) return invalidArgument("empty size");
  size_t i = 0;
  unsigned long long v = 0;
  while (i < s.size() && s[i] >= '0' && s[i] <= '9') {
    v = v * 10 + static_cast<unsigned>(s[i] - '0');
    if (v > (1ull << 50)) return invalidArgument("size too large: " + s);
    ++i;
  }
  if (i == 0) return invalidArgument("bad size: " + s);
  std::string suffix = s.substr(i);
  if (suffix.empty() || suffix == "b" || suffix == "B") return static_cast<size_t>(v);
  char c = suffix[0] | 0x20;
  if (suffix.size() > 1 &&
      !(suffix.size() == 2 && (suffix[1] == 'b' || suffix[1] == 'B' || suffix[1] == 'i')))
    return invalidArgument("bad size suffix: " + s);
  switch (c) {
    case 'k':
      return static_cast<size_t>(v << 10);
    case 'm':
      return static_cast<size_t>(v << 20);
    case 'g':
      return static_cast<size_t>(v << 30);
  }
  return invalidArgument("bad size suffix: " + s);
}

namespace {
std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : s) {
    if (c == sep) {
      out.push_back(cur);
      cur.clear();
    } else if (c != ' ') {
      cur.push_back(c);
    }
  }
  out.push_back(cur);
  return out;
}
}  // namespace

Result<Selector> Selector::create(const std::string& spec) {
  Selector sel;
  if (spec.empty()) return sel;
  for (const std::string& entry : split(spec, ',')) {
    if (entry.empty()) continue;
    // Optional "collective:" prefix; without it the rules apply to every
    // collective that has an algorithm of that name.
    std::vector<Collective> colls;
    std::string rest = entry;
    auto colon = entry.find(':');
    Collective c;
    if (colon != std::string::npos && parseCollective(entry.substr(0, colon), &c)) {
      colls.push_back(c);
      rest = entry.substr(colon + 1);
    } else {
      for (int i = 1; i <= kNumCollectives; ++i) colls.push_back(static_cast<Collective>(i));
    }
    for (const std::string& part : split(rest, '#')) {
      size_t lo = 0, hi = SIZE_MAX;
      std::string name = part;
      auto c2 = part.find(':');
      if (c2 != std::string::npos) {
        std::string range = part.substr(0, c2);
        name = part.substr(c2 + 1);
        auto dash = range.find('-');
        if (dash == std::string::npos)
          return invalidArgument("CHORUS_ALGO: range '" + range + "' must be lo-hi");
        CHORUS_ASSIGN_OR_RETURN(lo, parseSize(range.substr(0, dash)));
        CHORUS_ASSIGN_OR_RETURN(hi, parseSize(range.substr(dash + 1)));
        if (hi <= lo) return invalidArgument("CHORUS_ALGO: empty range '" + range + "'");
      }
      bool any = false;
      for (Collective coll : colls) {
        const AlgorithmInfo* a = findAlgorithm(coll, name);
        if (!a) continue;
        sel.rules_.push_back({coll, lo, hi, a});
        any = true;
      }
      if (!any) {
        std::string known;
        for (const AlgorithmInfo* a : allAlgorithms())
          if (colls.size() > 1 || a->collective == colls[0])
            known += std::string(known.empty() ? "" : ", ") + a->name;
        return invalidArgument(
            "CHORUS_ALGO: unknown algorithm '" + name + "'" +
            (colls.size() == 1 ? std::string(" for ") + collectiveName(colls[0]) : std::string()) +
            " (known: " + known + ")");
      }
    }
  }
  return sel;
}

const AlgorithmInfo* Selector::select(Collective c, size_t bytes, const CostInputs& base) const {
  for (const Rule& r : rules_)
    if (r.collective == c && bytes >= r.lo && bytes < r.hi) return r.algo;
  CostInputs in = base;
  in.bytes = bytes;
  const AlgorithmInfo* best = nullptr;
  double bestCost = 0;
  for (const AlgorithmInfo* a : allAlgorithms()) {
    if (a->collective != c) continue;
    double cost = a->cost(in);
    if (cost < 0) continue;
    if (!best || cost < bestCost) {  // ties: the first registered
      best = a;
      bestCost = cost;
    }
  }
  return best;
}

CostInputs costInputsFor(int n, const TopologyView* topo, int peersOnThisHost, int cores,
                         size_t segmentBytes, bool sharedMemory) {
  CostInputs in;
  in.n = n;
  in.sharedMemory = sharedMemory;
  in.topo = topo;
  in.segmentBytes = segmentBytes;
  // Loopback-calibrated defaults (docs/PERFORMANCE.md): ~20 us per dependent
  // round, ~2.5 GB/s per stream, ~2 us of CPU per message.
  in.alpha = 20e-6;
  in.beta = 0.4e-9;
  in.gamma = 2e-6;
  if (topo && topo->latencyUs > 0) in.alpha = std::max(2e-6, topo->latencyUs * 1e-6);
  if (topo && topo->bandwidthGBps > 0) in.beta = 1.0 / (topo->bandwidthGBps * 1e9);
  if (peersOnThisHost > cores && cores > 0) {
    // Peers wait for cores: every round costs wake-ups, every message CPU the
    // others need, and the cores' copy bandwidth is shared.
    double share = static_cast<double>(peersOnThisHost) / cores;
    in.alpha *= 3 * share / 2;
    in.gamma *= 4 * share;
    in.beta *= share;
  }
  return in;
}

std::string Selector::describe(const CostInputs& base) const {
  std::ostringstream os;
  os << "N=" << base.n << ", alpha " << base.alpha * 1e6 << " us, beta " << base.beta * 1e9
     << " ns/B, gamma " << base.gamma * 1e6 << " us" << (base.sharedMemory ? ", shared memory" : "")
     << (rules_.empty() ? "" : ", with overrides") << "\n";
  for (int ci = 1; ci <= kNumCollectives; ++ci) {
    Collective c = static_cast<Collective>(ci);
    os << "  " << collectiveName(c) << ":";
    const AlgorithmInfo* prev = nullptr;
    size_t start = 0;
    for (size_t bytes = 4;; bytes *= 2) {
      const AlgorithmInfo* a = select(c, bytes, base);
      if (a != prev) {
        if (prev) os << " " << start << "-" << bytes << ":" << prev->name;
        prev = a;
        start = bytes == 4 ? 0 : bytes;
      }
      if (bytes >= (size_t{1} << 34)) break;
    }
    if (prev) os << " " << start << "-inf:" << prev->name;
    os << "\n";
  }
  return os.str();
}

}  // namespace chorus::algo
