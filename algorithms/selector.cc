#include "algorithms/selector.h"

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
    Collective coll = Collective::kAllReduce;
    std::string rest = entry;
    auto colon = entry.find(':');
    if (colon != std::string::npos && entry.substr(0, colon) == "allreduce") {
      rest = entry.substr(colon + 1);
    }
    for (const std::string& part : split(rest, '#')) {
      Rule rule{coll, 0, SIZE_MAX, nullptr};
      std::string name = part;
      auto c2 = part.find(':');
      if (c2 != std::string::npos) {
        std::string range = part.substr(0, c2);
        name = part.substr(c2 + 1);
        auto dash = range.find('-');
        if (dash == std::string::npos)
          return invalidArgument("CHORUS_ALGO: range '" + range + "' must be lo-hi");
        CHORUS_ASSIGN_OR_RETURN(rule.lo, parseSize(range.substr(0, dash)));
        CHORUS_ASSIGN_OR_RETURN(rule.hi, parseSize(range.substr(dash + 1)));
        if (rule.hi <= rule.lo) return invalidArgument("CHORUS_ALGO: empty range '" + range + "'");
      }
      rule.algo = findAlgorithm(coll, name);
      if (!rule.algo) {
        std::string known;
        for (const AlgorithmInfo* a : allAlgorithms())
          if (a->collective == coll) known += std::string(known.empty() ? "" : ", ") + a->name;
        return invalidArgument("CHORUS_ALGO: unknown " + std::string(collectiveName(coll)) +
                               " algorithm '" + name + "' (known: " + known + ")");
      }
      sel.rules_.push_back(rule);
    }
  }
  return sel;
}

const AlgorithmInfo* Selector::select(Collective c, size_t bytes, int worldSize) const {
  for (const Rule& r : rules_)
    if (r.collective == c && bytes >= r.lo && bytes < r.hi) return r.algo;
  // Defaults (measured on loopback, docs/PERFORMANCE.md): a single peer or a
  // small total fan-out goes direct (one hop); medium sizes on 3+ peers take
  // two-phase (two rounds instead of 2(N-1): fewer wake-ups when peers share
  // cores); large sizes the ring, whose segments pipeline best. Until
  // topology is measured, every pair is assumed to talk at full speed.
  if (worldSize <= 1) return findAlgorithm(c, "direct");
  if (bytes * static_cast<size_t>(worldSize - 1) <= (64u << 10)) return findAlgorithm(c, "direct");
  if (worldSize >= 3 && bytes < (4u << 20)) return findAlgorithm(c, "twophase");
  return findAlgorithm(c, "ring");
}

std::string Selector::describe(Collective c, int worldSize) const {
  std::ostringstream os;
  os << collectiveName(c) << " at N=" << worldSize << ":\n";
  const AlgorithmInfo* prev = nullptr;
  size_t start = 0;
  for (size_t bytes = 1;; bytes *= 2) {
    const AlgorithmInfo* a = select(c, bytes, worldSize);
    if (a != prev) {
      if (prev) os << "  " << start << "-" << bytes << " B: " << prev->name << "\n";
      prev = a;
      start = bytes;
    }
    if (bytes >= (size_t{1} << 40)) break;
  }
  os << "  " << start << "-inf B: " << prev->name << "\n";
  return os.str();
}

}  // namespace chorus::algo
