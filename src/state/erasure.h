// Reed-Solomon erasure code over GF(2^8) with a Cauchy generator matrix, on
// Intel ISA-L (ec_encode_data: SIMD table lookups, the fastest maintained
// implementation on x86). k data shards + m parity shards; any k of the k+m
// rebuild the rest. A Cauchy matrix (unlike ISA-L's Vandermonde helper) has
// every k x k submatrix invertible, so *every* choice of k survivors decodes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "src/core/status.h"

namespace chorus::state {

class ErasureCode {
 public:
  static constexpr int kMaxShards = 255;  // GF(2^8)

  // k >= 1, m >= 1, k + m <= kMaxShards.
  static Result<ErasureCode> create(int k, int m);

  int dataShards() const { return k_; }
  int parityShards() const { return m_; }

  // parity[j] (j < m) = row k+j of the generator applied to data[0..k), each
  // `bytes` long.
  void encode(const uint8_t* const* data, uint8_t* const* parity, size_t bytes) const;
  // Only parity shard j (a peer that holds one parity shard computes just it).
  void encodeOne(int j, const uint8_t* const* data, uint8_t* parity, size_t bytes) const;

  // shards[0..k+m): present[i] says whether shards[i] holds valid bytes. At
  // least k must be present. Rebuilds every shard i with rebuild[i] set (its
  // buffer must be allocated, `bytes` long). Fails if fewer than k are present.
  Status decode(uint8_t* const* shards, const std::vector<bool>& present,
                const std::vector<bool>& rebuild, size_t bytes) const;

 private:
  // ec_encode_data over `rows` output rows with coefficient matrix `coeff`
  // (rows x k), in pieces (its length argument is an int).
  void apply(const uint8_t* tables, int rows, const uint8_t* const* in, uint8_t* const* out,
             size_t bytes) const;

  int k_ = 0, m_ = 0;
  std::vector<uint8_t> matrix_;  // (k+m) x k, identity on top
  std::vector<uint8_t> parityTables_;
};

}  // namespace chorus::state
