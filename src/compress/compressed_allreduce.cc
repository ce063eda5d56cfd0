#include "src/compress/compressed_allreduce.h"

#include <algorithm>
#include <cstring>

#include "kernels/cpu/codec.h"

namespace chorus::compress {

namespace {

constexpr uint64_t kTagCompressed = kInternalTagBit | 6;

void toFloat(DataType t, const void* in, float* out, size_t n) {
  if (t == DataType::kFloat32) {
    std::memcpy(out, in, n * 4);
    return;
  }
  auto* h = static_cast<const uint16_t*>(in);
  for (size_t i = 0; i < n; ++i)
    out[i] = t == DataType::kFloat16 ? halfToFloat(h[i]) : bf16ToFloat(h[i]);
}

void fromFloat(DataType t, const float* in, void* out, size_t n) {
  if (t == DataType::kFloat32) {
    std::memmove(out, in, n * 4);
    return;
  }
  auto* h = static_cast<uint16_t*>(out);
  for (size_t i = 0; i < n; ++i) h[i] = t == DataType::kFloat16 ? floatToHalf(in[i]) : floatToBf16(in[i]);
}

Status run(Communicator& comm, const algo::CollectiveArgs& a, OpInfo* total) {
  CHORUS_ASSIGN_OR_RETURN(auto r, comm.runAsync(a, kTagCompressed));
  OpInfo info;
  Status st = comm.wait(r, &info);
  total->bytesSent += info.bytesSent;
  total->bytesReceived += info.bytesReceived;
  total->epoch = info.epoch;
  total->contributors = info.contributors;
  return st;
}

}  // namespace

void Codec::reset() {
  std::lock_guard<std::mutex> lk(mu);
  count = 0;
  sendResidual.clear();
  ownerResidual.clear();
  ownedBegin = ownedEnd = 0;
}

Chunking chunkOnBlocks(size_t count, uint32_t blockSize, int n) {
  Chunking c;
  const size_t blocks = (count + blockSize - 1) / blockSize;
  for (int r = 0; r < n; ++r) {
    size_t b0 = blocks * r / n, b1 = blocks * (r + 1) / n;
    c.begin.push_back(std::min(count, b0 * blockSize));
    c.end.push_back(std::min(count, b1 * blockSize));
  }
  return c;
}

Status allReduceCompressed(Communicator& comm, Codec& codec, const void* sendbuf, void* recvbuf,
                           size_t count, DataType dtype, RedOp op, OpInfo* info) {
  if (dtype != DataType::kFloat32 && dtype != DataType::kFloat16 && dtype != DataType::kBfloat16)
    return invalidArgument(std::string("compressed all-reduce takes float, half or bfloat16, not ") +
                           dataTypeName(dtype));
  if (op != RedOp::kSum && op != RedOp::kAvg)
    return invalidArgument(std::string("compressed all-reduce reduces with sum or avg, not ") +
                           redOpName(op));
  std::lock_guard<std::mutex> lk(codec.mu);
  const codec::Params& base = codec.params;
  const int n = comm.worldSize(), me = comm.rank();
  OpInfo total;
  total.algorithm = "compressed";
  if (count == 0) {
    if (info) *info = total;
    return Status::ok();
  }
  if (codec.count != count) {  // a new buffer: residuals start over
    codec.count = count;
    codec.sendResidual.assign(codec.errorFeedback ? count : 0, 0.0f);
    codec.ownerResidual.assign(codec.errorFeedback ? count : 0, 0.0f);
    codec.ownedBegin = codec.ownedEnd = 0;
  }
  const Chunking ch = chunkOnBlocks(count, base.blockSize, n);
  auto bytesOf = [&](int r) { return codec::encodedBytes(base, ch.end[r] - ch.begin[r]); };

  // Phase 1: input (+ residual), compressed per owner.
  std::vector<float> v(count);
  toFloat(dtype, sendbuf, v.data(), count);
  if (codec.errorFeedback)
    for (size_t i = 0; i < count; ++i) v[i] = codec::fadd(v[i], codec.sendResidual[i]);
  codec::Params p1 = base;
  p1.seed = base.seed ^ (0x5851F42D4C957F2Dull * (codec.calls * 2 + 1)) ^ comm.peerId();
  algo::CollectiveArgs a;
  a.collective = algo::Collective::kAllToAllv;
  a.dtype = DataType::kUint8;
  std::vector<uint8_t> out, in;
  size_t outBytes = 0;
  for (int r = 0; r < n; ++r) {
    a.sendDispls.push_back(outBytes);
    a.sendCounts.push_back(bytesOf(r));
    outBytes += bytesOf(r);
  }
  out.resize(outBytes);
  for (int r = 0; r < n; ++r)
    kernels::encode(p1, v.data() + ch.begin[r], ch.end[r] - ch.begin[r], ch.begin[r],
                    out.data() + a.sendDispls[r]);
  const size_t mine = ch.end[me] - ch.begin[me], myBytes = bytesOf(me);
  in.resize(myBytes * n);
  for (int r = 0; r < n; ++r) {
    a.recvDispls.push_back(myBytes * r);
    a.recvCounts.push_back(myBytes);
  }
  a.sendbuf = out.data();
  a.recvbuf = in.data();
  a.count = outBytes;
  CHORUS_RETURN_IF_ERROR(run(comm, a, &total));

  // Owner: decode the N versions, sum in rank order (fp32), compress once.
  std::vector<float> sum(mine), d(mine);
  for (int r = 0; r < n; ++r) {
    CHORUS_RETURN_IF_ERROR(kernels::decode(base, in.data() + myBytes * r, myBytes, mine,
                                           r == 0 ? sum.data() : d.data()));
    if (r > 0)
      for (size_t i = 0; i < mine; ++i) sum[i] = codec::fadd(sum[i], d[i]);
  }
  if (op == RedOp::kAvg)
    for (size_t i = 0; i < mine; ++i) sum[i] = codec::fdiv(sum[i], static_cast<float>(n));
  if (codec.errorFeedback) {
    for (size_t i = 0; i < mine; ++i) {
      size_t g = ch.begin[me] + i;
      bool owned = g >= codec.ownedBegin && g < codec.ownedEnd;  // residual from last call
      if (owned) sum[i] = codec::fadd(sum[i], codec.ownerResidual[g]);
    }
  }
  size_t maxBytes = 0;
  for (int r = 0; r < n; ++r) maxBytes = std::max(maxBytes, bytesOf(r));
  std::vector<uint8_t> published(maxBytes, 0), gathered(maxBytes * n);
  codec::Params p2 = base;
  p2.seed = base.seed ^ (0x5851F42D4C957F2Dull * (codec.calls * 2 + 2));
  kernels::encode(p2, sum.data(), mine, ch.begin[me], published.data());
  algo::CollectiveArgs g;
  g.collective = algo::Collective::kAllGather;
  g.dtype = DataType::kUint8;
  g.sendbuf = published.data();
  g.recvbuf = gathered.data();
  g.count = maxBytes;
  CHORUS_RETURN_IF_ERROR(run(comm, g, &total));

  // Everyone decodes every published chunk (the owner adopts it too).
  std::vector<float> result(count);
  for (int r = 0; r < n; ++r)
    CHORUS_RETURN_IF_ERROR(kernels::decode(base, gathered.data() + maxBytes * r, bytesOf(r),
                                           ch.end[r] - ch.begin[r], result.data() + ch.begin[r]));

  // Success: commit the residuals.
  if (codec.errorFeedback) {
    std::vector<float> sent(count);
    for (int r = 0; r < n; ++r)
      CHORUS_RETURN_IF_ERROR(kernels::decode(base, out.data() + a.sendDispls[r], bytesOf(r),
                                             ch.end[r] - ch.begin[r], sent.data() + ch.begin[r]));
    for (size_t i = 0; i < count; ++i) codec.sendResidual[i] = codec::fsub(v[i], sent[i]);
    std::fill(codec.ownerResidual.begin(), codec.ownerResidual.end(), 0.0f);
    for (size_t i = 0; i < mine; ++i)
      codec.ownerResidual[ch.begin[me] + i] = codec::fsub(sum[i], result[ch.begin[me] + i]);
    codec.ownedBegin = ch.begin[me];
    codec.ownedEnd = ch.end[me];
  }
  ++codec.calls;
  fromFloat(dtype, result.data(), recvbuf, count);
  if (info) *info = total;
  return Status::ok();
}

}  // namespace chorus::compress
