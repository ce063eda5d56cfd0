// Compressed all-reduce that keeps bit parity (the two-phase scheme used for
// 1-bit and quantized training):
//
//   1. every peer splits its input (plus its error-feedback residual) into N
//      chunks on block boundaries, compresses chunk j and sends it to its
//      owner, peer j (all-to-all-v);
//   2. the owner decodes the N versions of its chunk and sums them in fp32,
//      in rank order; compresses the sum once (plus its own residual) and
//      publishes those bytes (all-gather);
//   3. every peer, the owner included, decodes the published bytes.
//
// Partial sums are never re-quantized, forwarded bytes are never
// re-encoded, and decoding is the same exactly-rounded code everywhere, so
// every peer ends with identical bytes.
//
// Error feedback (Codec::errorFeedback): the sender's residual (what
// compression dropped from its input) is kept per element of the caller's
// buffer, so it follows the elements when chunk ownership moves; the owner's
// residual is kept for the elements of the chunk it owns, and dropped for
// elements it stops owning after a membership change (at most one
// quantization step per element is lost). Residuals change only when the
// call succeeds; a different count resets them.
#pragma once

#include <cstdint>
#include <mutex>
#include <vector>

#include "kernels/common/codec_math.h"
#include "src/core/communicator.h"

namespace chorus::compress {

struct Codec {
  codec::Params params;
  bool errorFeedback = false;

  std::mutex mu;  // one operation at a time per codec
  size_t count = 0;
  std::vector<float> sendResidual;  // per element: left out of what this peer sent
  std::vector<float>
      ownerResidual;  // per element of the owned chunk: left out of the published sum
  size_t ownedBegin = 0, ownedEnd = 0;
  uint64_t calls = 0;  // varies the stochastic-rounding stream per call

  void reset();
};

struct Chunking {
  std::vector<size_t> begin, end;  // per rank, whole blocks (the last may be partial)
};
Chunking chunkOnBlocks(size_t count, uint32_t blockSize, int n);

// sum or avg; dtype fp32, fp16 or bf16. info: bytes on the wire of both phases.
Status allReduceCompressed(Communicator& comm, Codec& codec, const void* sendbuf, void* recvbuf,
                           size_t count, DataType dtype, RedOp op, OpInfo* info);

}  // namespace chorus::compress
