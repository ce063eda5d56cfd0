#include "kernels/cpu/codec.h"

#include <immintrin.h>

#include <string>

namespace chorus::kernels {

namespace {
// 1-bit signs with one movemask per eight values (bit t of byte j is set
// when value 8j + t is >= +0, as codec::encodeBlock writes it); the portable
// loop does not turn into this by itself.
__attribute__((target("avx2"))) void packSignsAvx2(const float* x, uint32_t n, uint8_t* out) {
  uint32_t j = 0;
  for (; 8 * j + 8 <= n; ++j)
    out[j] = static_cast<uint8_t>(~_mm256_movemask_ps(_mm256_loadu_ps(x + 8 * j)));
  if (8 * j < n) {
    uint32_t bits = 0;
    for (uint32_t t = 0; 8 * j + t < n; ++t)
      bits |= ((codec::bitsOf(x[8 * j + t]) >> 31) ^ 1u) << t;
    out[j] = static_cast<uint8_t>(bits);
  }
}

// fp8 encode of y = x * inv, eight values per step: codec::fp8EncodeT's
// selects as integer lanes (every float op in it is exact but the one
// rounding, the same round-half-even here), so the bytes are the same.
template <codec::Kind k>
__attribute__((target("avx2"))) void fp8EncodeAvx2(const float* x, uint32_t n, float inv,
                                                   uint8_t* out) {
  constexpr int kMan = k == codec::kE4M3 ? 3 : 2, kBias = k == codec::kE4M3 ? 7 : 15;
  constexpr int kMaxCode = k == codec::kE4M3 ? 0x7e : 0x7b;
  const __m256 vinv = _mm256_set1_ps(inv), vmax = _mm256_set1_ps(codec::fp8Max(k));
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff), sub = _mm256_set1_epi32(1 << kMan);
  const __m256i emin = _mm256_set1_epi32(1 - kBias), maxCode = _mm256_set1_epi32(kMaxCode);
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i y = _mm256_castps_si256(_mm256_mul_ps(_mm256_loadu_ps(x + i), vinv));
    __m256i sign = _mm256_and_si256(_mm256_srli_epi32(y, 24), _mm256_set1_epi32(0x80));
    // min(a, max) returns max for NaN, as the scalar `a < max ? a : max`.
    __m256 a = _mm256_min_ps(_mm256_castsi256_ps(_mm256_and_si256(y, absMask)), vmax);
    __m256i e =
        _mm256_sub_epi32(_mm256_srli_epi32(_mm256_castps_si256(a), 23), _mm256_set1_epi32(127));
    e = _mm256_max_epi32(e, emin);
    __m256 pow2 = _mm256_castsi256_ps(
        _mm256_slli_epi32(_mm256_sub_epi32(_mm256_set1_epi32(127 + kMan), e), 23));
    __m256i m = _mm256_cvttps_epi32(
        _mm256_round_ps(_mm256_mul_ps(a, pow2), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    __m256i carry = _mm256_srli_epi32(m, kMan + 1);
    m = _mm256_srlv_epi32(m, carry);
    e = _mm256_add_epi32(e, carry);
    __m256i normal =
        _mm256_or_si256(_mm256_slli_epi32(_mm256_add_epi32(e, _mm256_set1_epi32(kBias)), kMan),
                        _mm256_sub_epi32(m, sub));
    __m256i code = _mm256_blendv_epi8(normal, m, _mm256_cmpgt_epi32(sub, m));
    code = _mm256_or_si256(_mm256_min_epu32(code, maxCode), sign);
    __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(code), _mm256_extracti128_si256(code, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(out + i), _mm_packus_epi16(w, w));
  }
  for (; i < n; ++i) out[i] = codec::fp8EncodeT<k>(codec::fmul(x[i], inv));
}

// Every fp8 code's exact value (codec::fp8DecodeT), so decoding is a table
// lookup, the scale multiply and the canonical-NaN select: the same bits.
struct Fp8Table {
  alignas(64) float e4m3[256];
  alignas(64) float e5m2[256];
  Fp8Table() {
    for (int c = 0; c < 256; ++c) {
      e4m3[c] = codec::fp8DecodeT<codec::kE4M3>(static_cast<uint8_t>(c));
      e5m2[c] = codec::fp8DecodeT<codec::kE5M2>(static_cast<uint8_t>(c));
    }
  }
};
const Fp8Table kFp8;

__attribute__((target("avx2"))) void fp8DecodeAvx2(const float* table, const uint8_t* in,
                                                   uint32_t n, float scale, float* out) {
  const __m256 vscale = _mm256_set1_ps(scale);
  const __m256i absMask = _mm256_set1_epi32(0x7fffffff), inf = _mm256_set1_epi32(0x7f800000);
  const __m256i qnan = _mm256_set1_epi32(static_cast<int>(codec::bitsOf(codec::quietNaN())));
  uint32_t i = 0;
  for (; i + 8 <= n; i += 8) {
    __m256i idx = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(in + i)));
    __m256i v = _mm256_castps_si256(_mm256_mul_ps(_mm256_i32gather_ps(table, idx, 4), vscale));
    __m256i isNaN = _mm256_cmpgt_epi32(_mm256_and_si256(v, absMask), inf);
    _mm256_storeu_ps(out + i, _mm256_castsi256_ps(_mm256_blendv_epi8(v, qnan, isNaN)));
  }
  for (; i < n; ++i) out[i] = codec::canonical(codec::fmul(table[in[i]], scale));
}

const bool kHaveAvx2 = __builtin_cpu_supports("avx2");
}  // namespace

#define CHORUS_KERNEL __attribute__((target_clones("avx512f", "avx2", "default")))

Status checkCodecCount(const codec::Params& p, size_t count) {
  if (p.kind == codec::kTopKGlobal && count > codec::kMaxGlobalCount)
    return invalidArgument("global top-k selects over at most 2^32-1 values (got " +
                           std::to_string(count) + "); split the buffer or use per-block top-k");
  return Status::ok();
}

Status validateCodec(const codec::Params& p) {
  if (p.kind >= codec::kNumKinds)
    return invalidArgument("unknown codec kind " + std::to_string(p.kind));
  if (p.blockSize < 1 || p.blockSize > 65536)
    return invalidArgument("codec block size must be 1..65536 values (got " +
                           std::to_string(p.blockSize) + ")");
  if ((p.kind == codec::kTopK || p.kind == codec::kTopKGlobal) &&
      (p.topk < 1 || p.topk > p.blockSize))
    return invalidArgument("top-k must keep 1..blockSize values per block (got " +
                           std::to_string(p.topk) + " of " + std::to_string(p.blockSize) + ")");
  return Status::ok();
}

CHORUS_KERNEL void encode(const codec::Params& p, const float* x, size_t count, uint64_t firstIndex,
                          uint8_t* out) {
  if (p.kind == codec::kTopKGlobal) {  // one selection over the whole buffer
    if (count) codec::encodeBlock(p, x, static_cast<uint32_t>(count), firstIndex, out);
    return;
  }
  const size_t full = codec::blockBytes(p, p.blockSize);
  const bool fast =
      kHaveAvx2 && (p.kind == codec::kOneBit || p.kind == codec::kE4M3 || p.kind == codec::kE5M2);
  for (size_t b = 0, off = 0; off < count; ++b, off += p.blockSize) {
    uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
    uint32_t maxAbs = fast ? codec::maxAbsBits(x + off, n) : 0;
    if (fast && maxAbs < 0x7f800000u) {
      // The same bytes as encodeBlock, block header first.
      uint8_t* o = out + b * full;
      if (p.kind == codec::kOneBit) {  // the order-fixed mean |x|, then signs
        codec::putF(o, codec::fdiv(codec::sumAbs(x + off, n), static_cast<float>(n)));
        packSignsAvx2(x + off, n, o + 4);
      } else {
        float scale = codec::fdiv(codec::fromBits(maxAbs), codec::fp8Max(p.kind));
        codec::putF(o, scale);
        float inv = scale > 0 ? codec::fdiv(1.0f, scale) : 0.0f;
        if (p.kind == codec::kE4M3)
          fp8EncodeAvx2<codec::kE4M3>(x + off, n, inv, o + 4);
        else
          fp8EncodeAvx2<codec::kE5M2>(x + off, n, inv, o + 4);
      }
      continue;
    }
    codec::encodeBlock(p, x + off, n, firstIndex + off, out + b * full);
  }
}

CHORUS_KERNEL Status decode(const codec::Params& p, const uint8_t* in, size_t inBytes, size_t count,
                            float* out) {
  if (inBytes != codec::encodedBytes(p, count))
    return dataLoss("compressed data has " + std::to_string(inBytes) + " bytes, the encoding of " +
                    std::to_string(count) + " values has " +
                    std::to_string(codec::encodedBytes(p, count)));
  if (p.kind == codec::kTopKGlobal) {
    if (count) codec::decodeBlock(p, in, static_cast<uint32_t>(count), out);
    return Status::ok();
  }
  const size_t full = codec::blockBytes(p, p.blockSize);
  const float* fp8 = !kHaveAvx2               ? nullptr
                     : p.kind == codec::kE4M3 ? kFp8.e4m3
                     : p.kind == codec::kE5M2 ? kFp8.e5m2
                                              : nullptr;
  for (size_t b = 0, off = 0; off < count; ++b, off += p.blockSize) {
    uint32_t n = static_cast<uint32_t>(count - off < p.blockSize ? count - off : p.blockSize);
    if (fp8)
      fp8DecodeAvx2(fp8, in + b * full + 4, n, codec::getF(in + b * full), out + off);
    else
      codec::decodeBlock(p, in + b * full, n, out + off);
  }
  return Status::ok();
}

}  // namespace chorus::kernels
