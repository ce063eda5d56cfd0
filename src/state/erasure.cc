#include "src/state/erasure.h"

#include <isa-l/erasure_code.h>

#include <algorithm>
#include <string>

namespace chorus::state {

Result<ErasureCode> ErasureCode::create(int k, int m) {
  if (k < 1 || m < 1 || k + m > kMaxShards)
    return invalidArgument(
        "erasure code needs k >= 1 data and m >= 1 parity shards with k + m <= " +
        std::to_string(kMaxShards) + " (got k=" + std::to_string(k) + ", m=" + std::to_string(m) +
        ")");
  ErasureCode ec;
  ec.k_ = k;
  ec.m_ = m;
  ec.matrix_.resize(static_cast<size_t>(k + m) * k);
  gf_gen_cauchy1_matrix(ec.matrix_.data(), k + m, k);
  ec.parityTables_.resize(static_cast<size_t>(32) * k * m);
  ec_init_tables(k, m, ec.matrix_.data() + static_cast<size_t>(k) * k, ec.parityTables_.data());
  return ec;
}

void ErasureCode::apply(const uint8_t* tables, int rows, const uint8_t* const* in,
                        uint8_t* const* out, size_t bytes) const {
  constexpr size_t kPiece = size_t{1} << 30;
  std::vector<uint8_t*> src(k_), dst(rows);
  for (size_t off = 0; off < bytes; off += kPiece) {
    size_t len = std::min(kPiece, bytes - off);
    for (int i = 0; i < k_; ++i) src[i] = const_cast<uint8_t*>(in[i]) + off;
    for (int j = 0; j < rows; ++j) dst[j] = out[j] + off;
    ec_encode_data(static_cast<int>(len), k_, rows, const_cast<uint8_t*>(tables), src.data(),
                   dst.data());
  }
}

void ErasureCode::encode(const uint8_t* const* data, uint8_t* const* parity, size_t bytes) const {
  apply(parityTables_.data(), m_, data, parity, bytes);
}

void ErasureCode::encodeOne(int j, const uint8_t* const* data, uint8_t* parity,
                            size_t bytes) const {
  // ec_init_tables lays out 32 bytes per (row, source): row j's are contiguous.
  uint8_t* out[1] = {parity};
  apply(parityTables_.data() + static_cast<size_t>(32) * k_ * j, 1, data, out, bytes);
}

Status ErasureCode::decode(uint8_t* const* shards, const std::vector<bool>& present,
                           const std::vector<bool>& rebuild, size_t bytes) const {
  const int n = k_ + m_;
  if (static_cast<int>(present.size()) != n || static_cast<int>(rebuild.size()) != n)
    return invalidArgument("erasure decode: present/rebuild must name all k+m shards");
  // The first k present shards are the sources (data shards first: cheapest).
  std::vector<int> sources;
  for (int i = 0; i < n && static_cast<int>(sources.size()) < k_; ++i)
    if (present[i]) sources.push_back(i);
  if (static_cast<int>(sources.size()) < k_)
    return dataLoss("erasure decode: only " + std::to_string(sources.size()) + " of the " +
                    std::to_string(k_) + " shards needed survive");
  std::vector<int> targets;
  for (int i = 0; i < n; ++i)
    if (rebuild[i] && !present[i]) targets.push_back(i);
  if (targets.empty()) return Status::ok();

  // Sources = B * data, with B the source rows of the generator; data =
  // B^-1 * sources, and target row t = G[t] * B^-1.
  std::vector<uint8_t> b(static_cast<size_t>(k_) * k_), inv(static_cast<size_t>(k_) * k_);
  for (int r = 0; r < k_; ++r)
    std::copy_n(matrix_.data() + static_cast<size_t>(sources[r]) * k_, k_,
                b.data() + static_cast<size_t>(r) * k_);
  if (gf_invert_matrix(b.data(), inv.data(), k_) != 0)
    return internalError("erasure decode: source matrix not invertible (Cauchy property broken)");
  const int rows = static_cast<int>(targets.size());
  std::vector<uint8_t> coeff(static_cast<size_t>(rows) * k_);
  for (int t = 0; t < rows; ++t) {
    const uint8_t* g = matrix_.data() + static_cast<size_t>(targets[t]) * k_;
    for (int j = 0; j < k_; ++j) {
      uint8_t s = 0;
      for (int i = 0; i < k_; ++i) s ^= gf_mul(g[i], inv[static_cast<size_t>(i) * k_ + j]);
      coeff[static_cast<size_t>(t) * k_ + j] = s;
    }
  }
  std::vector<uint8_t> tables(static_cast<size_t>(32) * k_ * rows);
  ec_init_tables(k_, rows, coeff.data(), tables.data());
  std::vector<const uint8_t*> in(k_);
  std::vector<uint8_t*> out(rows);
  for (int i = 0; i < k_; ++i) in[i] = shards[sources[i]];
  for (int t = 0; t < rows; ++t) out[t] = shards[targets[t]];
  apply(tables.data(), rows, in.data(), out.data(), bytes);
  return Status::ok();
}

}  // namespace chorus::state
