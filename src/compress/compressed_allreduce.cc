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
  for (size_t i = 0; i < n; ++i)
    h[i] = t == DataType::kFloat16 ? floatToHalf(in[i]) : floatToBf16(in[i]);
}

Status run(Communicator& comm, const algo::CollectiveArgs& a, OpInfo* total) {
  auto r = comm.runAsync(a, kTagCompressed);
  CHORUS_RETURN_IF_ERROR(r.status());
  OpInfo info;
  Status st = comm.wait(r.value(), &info);
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
    return invalidArgument(
        std::string("compressed all-reduce takes float, half or bfloat16, not ") +
        dataTypeName(dtype));
  if (op != RedOp::kSum && op != RedOp::kAvg)
    return invalidArgument(std::string("compressed all-reduce reduces with sum or avg, not ") +
                           redOpName(op));
  std::lock_guard<std::mutex> lk(codec.mu);
  const codec::Params& base = codec.params;
  OpInfo total;
  total.algorithm = "compressed";
  if (count == 0) {
    if (info) *info = total;
    return Status::ok();
  }
  // The plan (chunking, counts) belongs to one view. A tiny all-gather first
  // tells every peer the same view (its epoch, size and ranks: the result is
  // uniform); the two phases are planned for that epoch and fail together,
  // on every peer, if the view changes before they start.
  std::vector<uint64_t> ids(static_cast<size_t>(comm.worldSize()) + 1);
  const uint64_t myId = comm.peerId();
  {
    algo::CollectiveArgs h;
    h.collective = algo::Collective::kAllGather;
    h.dtype = DataType::kUint64;
    h.sendbuf = &myId;
    h.recvbuf = ids.data();
    h.count = 1;
    OpInfo hi;
    CHORUS_RETURN_IF_ERROR(run(comm, h, &hi));
    total.epoch = hi.epoch;
    total.bytesSent += hi.bytesSent;
    total.bytesReceived += hi.bytesReceived;
    ids.resize(static_cast<size_t>(hi.contributors));
  }
  const uint64_t plannedEpoch = total.epoch;
  const int n = static_cast<int>(ids.size());
  const int me = static_cast<int>(std::find(ids.begin(), ids.end(), myId) - ids.begin());
  if (n < 1 || me >= n) return internalError("compressed all-reduce: this peer is not in its view");
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
  a.plannedEpoch = plannedEpoch;
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
  g.plannedEpoch = plannedEpoch;
  g.sendbuf = published.data();
  g.recvbuf = gathered.data();
  g.count = maxBytes;
  CHORUS_RETURN_IF_ERROR(run(comm, g, &total));
  // Both phases ran in the planned view (a safety net: plannedEpoch already
  // fails them otherwise).
  if (total.epoch != plannedEpoch)
    return aborted("the view changed between the phases of the compressed all-reduce; retry");

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
