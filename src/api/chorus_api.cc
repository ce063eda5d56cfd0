// The C boundary. Every entry point:
//  - checks the library is initialised and validates every argument,
//  - runs inside guard(), which turns Status into chorusResult_t, records
//    the message as the last error, and catches every exception so none
//    crosses into C.
#include <algorithm>
#include <atomic>
#include <cstring>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include "chorus.h"
#include "kernels/cpu/codec.h"
#include "kernels/cuda/codec.h"
#include "kernels/cuda/device.h"
#include "src/compress/compressed_allreduce.h"
#include "src/core/communicator.h"
#include "src/core/config.h"
#include "src/core/log.h"
#include "src/membership/coordinator.h"
#include "src/state/erasure.h"
#include "src/state/shared_state.h"
#include "src/state/snapshot.h"

using chorus::Code;
using chorus::Status;

struct chorusComm {
  static constexpr uint32_t kMagic = 0x436F6D6Du;  // "Comm"
  uint32_t magic = kMagic;
  std::shared_ptr<chorus::Communicator> impl;
  chorus::state::SharedState state;
  chorus::state::SnapshotStore snapshots;
  // Snapshot work off the caller's thread: re-protection after a membership
  // update, and chorusSnapshotAsync. Joined before any other snapshot call
  // (their operations share one tag, so each peer issues them in one order)
  // and at destroy.
  std::mutex bgMu;
  std::vector<std::thread> background;
  std::mutex errMu;
  std::string lastError;
};

struct chorusRequest {
  static constexpr uint32_t kMagic = 0x52657175u;  // "Requ"
  uint32_t magic = kMagic;
  std::weak_ptr<chorus::Communicator> comm;
  std::shared_ptr<chorus::OpResult> result;
};

struct chorusCodec {
  static constexpr uint32_t kMagic = 0x436F6463u;  // "Codc"
  uint32_t magic = kMagic;
  chorus::compress::Codec impl;
};

struct chorusCoordinator {
  static constexpr uint32_t kMagic = 0x436F6F72u;  // "Coor"
  uint32_t magic = kMagic;
  std::unique_ptr<chorus::membership::Coordinator> impl;
};

namespace {

void fillInfo(chorusOpInfo_t* out, const chorus::OpInfo& in);

std::atomic<int> gInitCount{0};
thread_local std::string tLastError;

chorusResult_t toResult(Code c) {
  switch (c) {
    case Code::kOk:
      return chorusSuccess;
    case Code::kInvalidArgument:
      return chorusInvalidArgument;
    case Code::kFailedPrecondition:
      return chorusInvalidUsage;
    case Code::kNotInitialized:
      return chorusNotInitialized;
    case Code::kSystem:
      return chorusSystemError;
    case Code::kInternal:
      return chorusInternalError;
    case Code::kUnavailable:
      return chorusUnavailable;
    case Code::kUnauthenticated:
      return chorusAuthFailed;
    case Code::kDeadlineExceeded:
      return chorusTimeout;
    case Code::kAborted:
      return chorusPeerLost;
    case Code::kRemoved:
      return chorusRemoved;
    case Code::kProtocol:
      return chorusProtocolError;
    case Code::kDataLoss:
      return chorusDataLoss;
    case Code::kResourceExhausted:
      return chorusOutOfMemory;
    case Code::kUnimplemented:
      return chorusUnsupported;
    case Code::kInProgress:
      return chorusInProgress;
  }
  return chorusInternalError;
}

void record(chorusComm* comm, const Status& st) {
  if (st.isOk()) return;
  if (comm && comm->magic == chorusComm::kMagic) {
    std::lock_guard<std::mutex> lk(comm->errMu);
    comm->lastError = st.message();
  }
  tLastError = st.message();
}

// Runs f (returning Status) with every exception mapped to a result code.
template <typename F>
chorusResult_t guard(chorusComm* comm, F&& f) {
  Status st;
  try {
    st = f();
  } catch (const std::bad_alloc&) {
    st = Status(Code::kResourceExhausted, "out of memory");
  } catch (const std::exception& e) {
    st = Status(Code::kInternal, std::string("unexpected exception: ") + e.what());
  } catch (...) {
    st = Status(Code::kInternal, "unexpected exception");
  }
  record(comm, st);
  return toResult(st.code());
}

Status requireInit() {
  if (gInitCount.load() <= 0)
    return Status(Code::kNotInitialized, "Chorus is not initialised: call chorusInit() first");
  return Status::ok();
}

Status requireComm(chorusComm* comm) {
  CHORUS_RETURN_IF_ERROR(requireInit());
  if (!comm) return chorus::invalidArgument("comm is NULL");
  if (comm->magic != chorusComm::kMagic || !comm->impl)
    return chorus::invalidArgument("comm is not a valid communicator (destroyed?)");
  return Status::ok();
}

void joinBackground(chorusComm* comm) {
  std::vector<std::thread> threads;
  {
    std::lock_guard<std::mutex> lk(comm->bgMu);
    threads.swap(comm->background);
  }
  for (auto& t : threads) t.join();
}

// Every member (a joiner too) runs this after a membership update, at the
// same point of its call sequence, so their operations match.
void startProtector(chorusComm* comm) {
  joinBackground(comm);
  std::lock_guard<std::mutex> lk(comm->bgMu);
  comm->background.emplace_back([comm, impl = comm->impl] {
    auto r = comm->snapshots.protect(*impl);
    if (!r.isOk()) LOG_INFO("background snapshot protection: " << r.status().toString());
  });
}

void fillSnapshotInfo(chorusSnapshotInfo_t* out, const chorus::state::SnapshotReport& r) {
  if (!out) return;
  out->snapshotId = r.snapshotId;
  out->revision = r.revision;
  out->dataShards = r.dataShards;
  out->parityShards = r.parityShards;
  out->stateBytes = r.stateBytes;
  out->shardBytes = r.shardBytes;
  out->shardsHeld = r.shardsHeld;
  out->shardsLost = r.shardsLost;
  out->shardsCorrupt = r.shardsCorrupt;
  out->shardsRebuilt = r.shardsRebuilt;
  out->shardsMissing = r.shardsMissing;
  out->bytesSent = r.bytesSent;
  out->bytesReceived = r.bytesReceived;
  out->codecSeconds = r.codecSeconds;
}

Status checkSnapshotInfo(const chorusSnapshotInfo_t* info) {
  if (info && info->size < sizeof(chorusSnapshotInfo_t))
    return chorus::invalidArgument("info->size must be sizeof(chorusSnapshotInfo_t)");
  return Status::ok();
}

Status validateReduce(const void* sendbuf, void* recvbuf, size_t count, int dtype, int op,
                      chorus::algo::CollectiveArgs* args) {
  if (!chorus::validDataType(dtype))
    return chorus::invalidArgument("unknown data type " + std::to_string(dtype));
  if (!chorus::validRedOp(op))
    return chorus::invalidArgument("unknown reduction op " + std::to_string(op));
  size_t elem = chorus::dataTypeSize(static_cast<chorus::DataType>(dtype));
  if (count > SIZE_MAX / elem)
    return chorus::invalidArgument("count " + std::to_string(count) + " times the element size " +
                                   std::to_string(elem) + " overflows");
  if (count > 0) {
    if (!sendbuf) return chorus::invalidArgument("sendbuf is NULL");
    if (!recvbuf) return chorus::invalidArgument("recvbuf is NULL");
    size_t bytes = count * elem;
    auto s = reinterpret_cast<uintptr_t>(sendbuf), r = reinterpret_cast<uintptr_t>(recvbuf);
    if (s != r && s < r + bytes && r < s + bytes)
      return chorus::invalidArgument(
          "sendbuf and recvbuf overlap without being equal (in place needs sendbuf == recvbuf)");
  }
  args->collective = chorus::algo::Collective::kAllReduce;
  args->sendbuf = sendbuf;
  args->recvbuf = recvbuf;
  args->count = count;
  args->dtype = static_cast<chorus::DataType>(dtype);
  args->op = static_cast<chorus::RedOp>(op);
  return Status::ok();
}

using chorus::algo::Collective;

Status checkDtype(int dtype) {
  if (!chorus::validDataType(dtype))
    return chorus::invalidArgument("unknown data type " + std::to_string(dtype));
  return Status::ok();
}
Status checkOp(int op) {
  if (!chorus::validRedOp(op))
    return chorus::invalidArgument("unknown reduction op " + std::to_string(op));
  return Status::ok();
}
// elements * elemSize * factor, without wrapping.
Status bytesOf(size_t elements, size_t elemSize, size_t factor, size_t* out, const char* what) {
  if (factor && elements > SIZE_MAX / elemSize / factor)
    return chorus::invalidArgument(std::string(what) + ": count " + std::to_string(elements) +
                                   " times the element size overflows");
  *out = elements * elemSize * factor;
  return Status::ok();
}
bool overlaps(const void* a, size_t an, const void* b, size_t bn) {
  auto x = reinterpret_cast<uintptr_t>(a), y = reinterpret_cast<uintptr_t>(b);
  return an && bn && x < y + bn && y < x + an;
}
Status need(const void* p, const char* name) {
  if (!p) return chorus::invalidArgument(std::string(name) + " is NULL");
  return Status::ok();
}

// Validates the buffers of a collective (NCCL's in-place forms allowed) and
// fills args. Ranks are checked against the view when the call is issued.
Status validateCollective(chorusComm* comm, chorus::algo::CollectiveArgs* a) {
  CHORUS_RETURN_IF_ERROR(checkDtype(static_cast<int>(a->dtype)));
  size_t es = chorus::dataTypeSize(a->dtype);
  int n = comm->impl->worldSize(), me = comm->impl->rank();
  if (n <= 0) n = 1;
  size_t one, all;
  CHORUS_RETURN_IF_ERROR(
      bytesOf(a->count, es, 1, &one, chorus::algo::collectiveName(a->collective)));
  CHORUS_RETURN_IF_ERROR(bytesOf(a->count, es, static_cast<size_t>(n), &all,
                                 chorus::algo::collectiveName(a->collective)));
  const uint8_t* sb = static_cast<const uint8_t*>(a->sendbuf);
  uint8_t* rb = static_cast<uint8_t*>(a->recvbuf);
  bool isRoot = me == a->root;
  switch (a->collective) {
    case Collective::kBroadcast:
      if (a->count && isRoot) CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf (on the root)"));
      if (a->count) CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
      if (isRoot && sb != rb && overlaps(sb, one, rb, one))
        return chorus::invalidArgument("sendbuf and recvbuf overlap (in place needs them equal)");
      break;
    case Collective::kReduce:
      CHORUS_RETURN_IF_ERROR(checkOp(static_cast<int>(a->op)));
      if (a->count) CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
      if (a->count && isRoot) CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf (on the root)"));
      if (isRoot && sb != rb && overlaps(sb, one, rb, one))
        return chorus::invalidArgument("sendbuf and recvbuf overlap (in place needs them equal)");
      break;
    case Collective::kAllGather:
      if (a->count) {
        CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
        CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
        if (sb != rb + static_cast<size_t>(me) * one && overlaps(sb, one, rb, all))
          return chorus::invalidArgument(
              "sendbuf overlaps recvbuf (in place needs sendbuf == recvbuf + rank * sendcount)");
      }
      break;
    case Collective::kReduceScatter:
      CHORUS_RETURN_IF_ERROR(checkOp(static_cast<int>(a->op)));
      if (a->count) {
        CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
        CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
        if (rb != sb + static_cast<size_t>(me) * one && overlaps(sb, all, rb, one))
          return chorus::invalidArgument(
              "recvbuf overlaps sendbuf (in place needs recvbuf == sendbuf + rank * recvcount)");
      }
      break;
    case Collective::kAllToAll:
      if (a->count) {
        CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
        CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
        if (overlaps(sb, all, rb, all))
          return chorus::invalidArgument("all-to-all has no in-place form: buffers overlap");
      }
      break;
    case Collective::kAllToAllv: {
      if (a->sendCounts.size() != static_cast<size_t>(n) ||
          a->recvCounts.size() != static_cast<size_t>(n))
        return chorus::invalidArgument("all-to-all-v arrays need worldSize entries");
      size_t sEnd = 0, rEnd = 0, tmp;
      for (int j = 0; j < n; ++j) {
        CHORUS_RETURN_IF_ERROR(
            bytesOf(a->sendCounts[j] + a->sendDispls[j], es, 1, &tmp, "alltoallv"));
        if (a->sendCounts[j] > SIZE_MAX - a->sendDispls[j])
          return chorus::invalidArgument("alltoallv: send count + displacement overflows");
        sEnd = std::max(sEnd, a->sendCounts[j] ? tmp : 0);
        CHORUS_RETURN_IF_ERROR(
            bytesOf(a->recvCounts[j] + a->recvDispls[j], es, 1, &tmp, "alltoallv"));
        if (a->recvCounts[j] > SIZE_MAX - a->recvDispls[j])
          return chorus::invalidArgument("alltoallv: receive count + displacement overflows");
        rEnd = std::max(rEnd, a->recvCounts[j] ? tmp : 0);
      }
      if (sEnd) CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
      if (rEnd) CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
      if (overlaps(sb, sEnd, rb, rEnd))
        return chorus::invalidArgument("all-to-all-v has no in-place form: buffers overlap");
      break;
    }
    case Collective::kGather:
      if (a->count) {
        CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
        if (isRoot) {
          CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf (on the root)"));
          if (sb != rb + static_cast<size_t>(me) * one && overlaps(sb, one, rb, all))
            return chorus::invalidArgument(
                "sendbuf overlaps recvbuf (in place needs sendbuf == recvbuf + root * count)");
        }
      }
      break;
    case Collective::kScatter:
      if (a->count) {
        CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
        if (isRoot) {
          CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf (on the root)"));
          if (rb != sb + static_cast<size_t>(me) * one && overlaps(sb, all, rb, one))
            return chorus::invalidArgument(
                "recvbuf overlaps sendbuf (in place needs recvbuf == sendbuf + root * count)");
        }
      }
      break;
    case Collective::kSend:
      if (a->count) CHORUS_RETURN_IF_ERROR(need(sb, "sendbuf"));
      break;
    case Collective::kRecv:
      if (a->count) CHORUS_RETURN_IF_ERROR(need(rb, "recvbuf"));
      break;
    default:
      break;
  }
  return Status::ok();
}

// Runs a validated collective, blocking (request == nullptr) or not.
Status runCollective(chorusComm* comm, chorus::algo::CollectiveArgs& a, uint64_t tag,
                     chorusRequest_t* request, chorusOpInfo_t* info) {
  CHORUS_RETURN_IF_ERROR(validateCollective(comm, &a));
  if (!request) {
    chorus::OpInfo oi;
    Status st = comm->impl->run(a, &oi);
    fillInfo(info, oi);
    return st;
  }
  if (tag & chorus::kInternalTagBit)
    return chorus::invalidArgument("tags with the top bit set are reserved for Chorus");
  CHORUS_ASSIGN_OR_RETURN(auto r, comm->impl->runAsync(a, tag));
  auto* req = new chorusRequest();
  req->comm = comm->impl;
  req->result = std::move(r);
  *request = req;
  return Status::ok();
}

void fillInfo(chorusOpInfo_t* out, const chorus::OpInfo& in) {
  if (!out) return;
  out->contributors = in.contributors;
  out->attempts = in.attempts;
  out->epoch = in.epoch;
  out->bytesSent = in.bytesSent;
  out->bytesReceived = in.bytesReceived;
  std::strncpy(out->algorithm, in.algorithm.c_str(), sizeof(out->algorithm) - 1);
  out->algorithm[sizeof(out->algorithm) - 1] = '\0';
}

Status checkInfo(const chorusOpInfo_t* info) {
  if (info && info->size < sizeof(chorusOpInfo_t))
    return chorus::invalidArgument(
        "info->size must be set to sizeof(chorusOpInfo_t) before the call");
  return Status::ok();
}

}  // namespace

extern "C" {

CHORUS_API const char* chorusGetErrorString(chorusResult_t r) {
  switch (r) {
    case chorusSuccess:
      return "success";
    case chorusInvalidArgument:
      return "invalid argument";
    case chorusInvalidUsage:
      return "invalid usage";
    case chorusNotInitialized:
      return "library not initialised";
    case chorusSystemError:
      return "system error";
    case chorusInternalError:
      return "internal error";
    case chorusUnavailable:
      return "unavailable (coordinator or peer unreachable)";
    case chorusAuthFailed:
      return "authentication failed";
    case chorusTimeout:
      return "timed out";
    case chorusPeerLost:
      return "peer lost (operation may be retried in the new view)";
    case chorusRemoved:
      return "this peer is no longer a member of the group";
    case chorusProtocolError:
      return "protocol error (malformed or incompatible message)";
    case chorusDataLoss:
      return "data loss";
    case chorusOutOfMemory:
      return "out of memory";
    case chorusUnsupported:
      return "unsupported";
    case chorusInProgress:
      return "in progress";
    default:
      return "unknown result code";
  }
}

CHORUS_API chorusResult_t chorusInit(void) {
  return guard(nullptr, [] {
    gInitCount.fetch_add(1);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusFinalize(void) {
  return guard(nullptr, [] {
    int prev = gInitCount.load();
    while (prev > 0 && !gInitCount.compare_exchange_weak(prev, prev - 1)) {
    }
    if (prev <= 0) return Status(Code::kNotInitialized, "chorusFinalize without chorusInit");
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusGetVersion(int* version) {
  return guard(nullptr, [&] {
    if (!version) return chorus::invalidArgument("version is NULL");
    *version = CHORUS_VERSION_CODE;
    return Status::ok();
  });
}

CHORUS_API size_t chorusDataTypeSize(chorusDataType_t dtype) {
  if (!chorus::validDataType(dtype)) return 0;
  return chorus::dataTypeSize(static_cast<chorus::DataType>(dtype));
}

CHORUS_API const char* chorusGetLastError(chorusComm_t comm) {
  if (comm && comm->magic == chorusComm::kMagic) {
    std::lock_guard<std::mutex> lk(comm->errMu);
    // Copy into thread-local storage so the pointer stays valid for the caller.
    tLastError = comm->lastError;
  }
  return tLastError.c_str();
}

// ---- coordinator ----------------------------------------------------------

CHORUS_API chorusResult_t chorusCoordinatorParamsInit(chorusCoordinatorParams_t* params) {
  return guard(nullptr, [&] {
    if (!params) return chorus::invalidArgument("params is NULL");
    chorus::fillCoordinatorDefaults(params);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCoordinatorStart(const chorusCoordinatorParams_t* params,
                                                 chorusCoordinator_t* coordinator) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    if (!params) return chorus::invalidArgument("params is NULL");
    if (!coordinator) return chorus::invalidArgument("coordinator is NULL");
    *coordinator = nullptr;
    CHORUS_ASSIGN_OR_RETURN(chorus::CoordinatorConfig cfg,
                            chorus::coordinatorConfigFromParams(params));
    CHORUS_ASSIGN_OR_RETURN(auto impl, chorus::membership::Coordinator::start(cfg));
    auto* c = new chorusCoordinator();
    c->impl = std::move(impl);
    *coordinator = c;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCoordinatorGetAddress(chorusCoordinator_t coordinator, char* buffer,
                                                      size_t length) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    if (!coordinator || coordinator->magic != chorusCoordinator::kMagic)
      return chorus::invalidArgument("coordinator is not a valid handle");
    if (!buffer) return chorus::invalidArgument("buffer is NULL");
    std::string addr = coordinator->impl->address().toString();
    if (length < addr.size() + 1)
      return chorus::invalidArgument("buffer of " + std::to_string(length) +
                                     " bytes is too small for '" + addr + "'");
    std::memcpy(buffer, addr.c_str(), addr.size() + 1);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCoordinatorStop(chorusCoordinator_t coordinator) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    if (!coordinator || coordinator->magic != chorusCoordinator::kMagic)
      return chorus::invalidArgument("coordinator is not a valid handle");
    coordinator->impl->stop();
    coordinator->magic = 0;
    delete coordinator;
    return Status::ok();
  });
}

// ---- communicator ---------------------------------------------------------

CHORUS_API chorusResult_t chorusCommParamsInit(chorusCommParams_t* params) {
  return guard(nullptr, [&] {
    if (!params) return chorus::invalidArgument("params is NULL");
    chorus::fillCommDefaults(params);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommCreate(const chorusCommParams_t* params, chorusComm_t* comm) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    if (!params) return chorus::invalidArgument("params is NULL");
    if (!comm) return chorus::invalidArgument("comm is NULL");
    *comm = nullptr;
    CHORUS_ASSIGN_OR_RETURN(chorus::CommConfig cfg, chorus::commConfigFromParams(params));
    CHORUS_ASSIGN_OR_RETURN(auto impl, chorus::Communicator::create(cfg));
    auto* c = new chorusComm();
    c->impl = std::move(impl);
    *comm = c;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommConnect(chorusComm_t comm) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(comm->impl->connect());
    startProtector(comm);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommDestroy(chorusComm_t comm) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    comm->impl->shutdown();  // fails whatever background work waits on
    joinBackground(comm);
    comm->magic = 0;
    delete comm;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommRank(chorusComm_t comm, int* rank) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!rank) return chorus::invalidArgument("rank is NULL");
    *rank = comm->impl->rank();
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommWorldSize(chorusComm_t comm, int* worldSize) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!worldSize) return chorus::invalidArgument("worldSize is NULL");
    *worldSize = comm->impl->worldSize();
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommEpoch(chorusComm_t comm, uint64_t* epoch) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!epoch) return chorus::invalidArgument("epoch is NULL");
    *epoch = comm->impl->epoch();
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommPeerId(chorusComm_t comm, uint64_t* peerId) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!peerId) return chorus::invalidArgument("peerId is NULL");
    *peerId = comm->impl->peerId();
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCommGetAsyncError(chorusComm_t comm, chorusResult_t* asyncError) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!asyncError) return chorus::invalidArgument("asyncError is NULL");
    Status st = comm->impl->asyncError();
    *asyncError = toResult(st.code());
    if (!st.isOk()) record(comm, st);
    return Status::ok();
  });
}

// ---- membership -----------------------------------------------------------

CHORUS_API chorusResult_t chorusPeersPending(chorusComm_t comm, int* pending) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!pending) return chorus::invalidArgument("pending is NULL");
    CHORUS_ASSIGN_OR_RETURN(*pending, comm->impl->peersPending());
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusUpdateMembership(chorusComm_t comm) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    joinBackground(comm);
    CHORUS_RETURN_IF_ERROR(comm->impl->updateMembership());
    startProtector(comm);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusAnnounceLeave(chorusComm_t comm) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    return comm->impl->announceLeave();
  });
}

// ---- all-reduce -------------------------------------------------------------

CHORUS_API chorusResult_t chorusAllReduce(const void* sendbuf, void* recvbuf, size_t count,
                                          chorusDataType_t dtype, chorusRedOp_t op,
                                          chorusComm_t comm, chorusOpInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    chorus::algo::CollectiveArgs args;
    CHORUS_RETURN_IF_ERROR(validateReduce(sendbuf, recvbuf, count, dtype, op, &args));
    chorus::OpInfo oi;
    Status st = comm->impl->allReduce(args, &oi);
    fillInfo(info, oi);
    return st;
  });
}

CHORUS_API chorusResult_t chorusAllReduceAsync(const void* sendbuf, void* recvbuf, size_t count,
                                               chorusDataType_t dtype, chorusRedOp_t op,
                                               uint64_t tag, chorusComm_t comm,
                                               chorusRequest_t* request) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!request) return chorus::invalidArgument("request is NULL");
    *request = nullptr;
    if (tag & chorus::kInternalTagBit)
      return chorus::invalidArgument("tags with the top bit set are reserved for Chorus");
    chorus::algo::CollectiveArgs args;
    CHORUS_RETURN_IF_ERROR(validateReduce(sendbuf, recvbuf, count, dtype, op, &args));
    CHORUS_ASSIGN_OR_RETURN(auto r, comm->impl->runAsync(args, tag));
    auto* req = new chorusRequest();
    req->comm = comm->impl;
    req->result = std::move(r);
    *request = req;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusAllReduceWithRetry(const void* sendbuf, void* recvbuf, size_t count,
                                                   chorusDataType_t dtype, chorusRedOp_t op,
                                                   int maxAttempts, chorusComm_t comm,
                                                   chorusOpInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    if (maxAttempts < 0) return chorus::invalidArgument("maxAttempts must not be negative");
    if (maxAttempts == 0) maxAttempts = 8;
    chorus::algo::CollectiveArgs args;
    CHORUS_RETURN_IF_ERROR(validateReduce(sendbuf, recvbuf, count, dtype, op, &args));
    // In place, a failed attempt may have overwritten the input: keep a copy.
    std::vector<uint8_t> saved;
    if (args.inPlace() && count > 0) {
      size_t bytes = count * chorus::dataTypeSize(args.dtype);
      saved.assign(static_cast<const uint8_t*>(sendbuf),
                   static_cast<const uint8_t*>(sendbuf) + bytes);
      args.sendbuf = saved.data();
    }
    Status st;
    chorus::OpInfo oi;
    int attempt = 0;
    for (; attempt < maxAttempts; ++attempt) {
      st = comm->impl->allReduce(args, &oi);
      if (st.code() != Code::kAborted) break;
      LOG_INFO("all-reduce attempt " << attempt + 1 << " failed (" << st.message()
                                     << "); retrying in the new view");
    }
    oi.attempts = attempt < maxAttempts ? attempt + 1 : maxAttempts;
    fillInfo(info, oi);
    return st;
  });
}

CHORUS_API chorusResult_t chorusTest(chorusRequest_t* request, int* done, chorusOpInfo_t* info) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    if (!request || !*request) return chorus::invalidArgument("request is NULL");
    if (!done) return chorus::invalidArgument("done is NULL");
    chorusRequest* req = *request;
    if (req->magic != chorusRequest::kMagic)
      return chorus::invalidArgument("request is not a valid handle (already completed?)");
    bool finished = req->result->finished.load(std::memory_order_acquire);
    if (!finished) {
      auto comm = req->comm.lock();
      if (comm) finished = comm->test(req->result);
    }
    *done = finished ? 1 : 0;
    if (!finished) return Status::ok();
    Status st = req->result->status;
    fillInfo(info, req->result->info);
    req->magic = 0;
    delete req;
    *request = nullptr;
    return st;
  });
}

CHORUS_API chorusResult_t chorusWait(chorusRequest_t* request, chorusOpInfo_t* info) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    if (!request || !*request) return chorus::invalidArgument("request is NULL");
    chorusRequest* req = *request;
    if (req->magic != chorusRequest::kMagic)
      return chorus::invalidArgument("request is not a valid handle (already completed?)");
    Status st;
    chorus::OpInfo oi;
    auto comm = req->comm.lock();
    if (comm) {
      st = comm->wait(req->result, &oi);
    } else if (req->result->finished.load(std::memory_order_acquire)) {
      st = req->result->status;
      oi = req->result->info;
    } else {
      st = chorus::aborted("the communicator was destroyed");
    }
    fillInfo(info, oi);
    req->magic = 0;
    delete req;
    *request = nullptr;
    return st;
  });
}

// ---- other collectives ------------------------------------------------------

namespace {

chorus::algo::CollectiveArgs makeArgs(Collective c, const void* sendbuf, void* recvbuf,
                                      size_t count, chorusDataType_t dtype, int op, int root) {
  chorus::algo::CollectiveArgs a;
  a.collective = c;
  a.sendbuf = sendbuf;
  a.recvbuf = recvbuf;
  a.count = count;
  a.dtype = static_cast<chorus::DataType>(dtype);
  a.op = static_cast<chorus::RedOp>(op);
  a.root = root;
  return a;
}

// Blocking or asynchronous entry, with the C boundary's checks.
chorusResult_t entry(chorusComm_t comm, chorus::algo::CollectiveArgs a, uint64_t tag,
                     chorusRequest_t* request, bool async, chorusOpInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    if (async) {
      if (!request) return chorus::invalidArgument("request is NULL");
      *request = nullptr;
    }
    return runCollective(comm, a, tag, async ? request : nullptr, info);
  });
}

// Point-to-point calls queued by an open group on this thread.
struct GroupCall {
  chorusComm_t comm;
  chorus::algo::CollectiveArgs args;
  uint64_t tag;
};
thread_local int tGroupDepth = 0;
thread_local std::vector<GroupCall> tGroup;

chorusResult_t p2pEntry(Collective c, const void* sendbuf, void* recvbuf, size_t count,
                        chorusDataType_t dtype, int peer, uint32_t tag, chorusComm_t comm) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (tag >= 0x80000000u)
      return chorus::invalidArgument("point-to-point tags must be below 2^31");
    auto a = makeArgs(c, sendbuf, recvbuf, count, dtype, 0, peer);
    CHORUS_RETURN_IF_ERROR(validateCollective(comm, &a));
    if (tGroupDepth > 0) {
      tGroup.push_back({comm, a, tag});
      return Status::ok();
    }
    CHORUS_ASSIGN_OR_RETURN(auto r, comm->impl->runAsync(a, tag));
    return comm->impl->wait(r, nullptr);
  });
}

}  // namespace

CHORUS_API chorusResult_t chorusBroadcast(const void* sendbuf, void* recvbuf, size_t count,
                                          chorusDataType_t dtype, int root, chorusComm_t comm,
                                          chorusOpInfo_t* info) {
  return entry(comm, makeArgs(Collective::kBroadcast, sendbuf, recvbuf, count, dtype, 0, root), 0,
               nullptr, false, info);
}
CHORUS_API chorusResult_t chorusReduce(const void* sendbuf, void* recvbuf, size_t count,
                                       chorusDataType_t dtype, chorusRedOp_t op, int root,
                                       chorusComm_t comm, chorusOpInfo_t* info) {
  return entry(comm, makeArgs(Collective::kReduce, sendbuf, recvbuf, count, dtype, op, root), 0,
               nullptr, false, info);
}
CHORUS_API chorusResult_t chorusAllGather(const void* sendbuf, void* recvbuf, size_t sendcount,
                                          chorusDataType_t dtype, chorusComm_t comm,
                                          chorusOpInfo_t* info) {
  return entry(comm, makeArgs(Collective::kAllGather, sendbuf, recvbuf, sendcount, dtype, 0, 0), 0,
               nullptr, false, info);
}
CHORUS_API chorusResult_t chorusReduceScatter(const void* sendbuf, void* recvbuf, size_t recvcount,
                                              chorusDataType_t dtype, chorusRedOp_t op,
                                              chorusComm_t comm, chorusOpInfo_t* info) {
  return entry(comm,
               makeArgs(Collective::kReduceScatter, sendbuf, recvbuf, recvcount, dtype, op, 0), 0,
               nullptr, false, info);
}
CHORUS_API chorusResult_t chorusAllToAll(const void* sendbuf, void* recvbuf, size_t count,
                                         chorusDataType_t dtype, chorusComm_t comm,
                                         chorusOpInfo_t* info) {
  return entry(comm, makeArgs(Collective::kAllToAll, sendbuf, recvbuf, count, dtype, 0, 0), 0,
               nullptr, false, info);
}

namespace {
chorusResult_t allToAllvEntry(const void* sendbuf, const size_t* sendcounts, const size_t* sdispls,
                              void* recvbuf, const size_t* recvcounts, const size_t* rdispls,
                              chorusDataType_t dtype, uint64_t tag, chorusComm_t comm,
                              chorusRequest_t* request, bool async, chorusOpInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    if (!sendcounts || !sdispls || !recvcounts || !rdispls)
      return chorus::invalidArgument("all-to-all-v count and displacement arrays must not be NULL");
    auto a = makeArgs(Collective::kAllToAllv, sendbuf, recvbuf, 0, dtype, 0, 0);
    size_t n = static_cast<size_t>(std::max(1, comm->impl->worldSize()));
    a.sendCounts.assign(sendcounts, sendcounts + n);
    a.sendDispls.assign(sdispls, sdispls + n);
    a.recvCounts.assign(recvcounts, recvcounts + n);
    a.recvDispls.assign(rdispls, rdispls + n);
    if (async) {
      if (!request) return chorus::invalidArgument("request is NULL");
      *request = nullptr;
    }
    return runCollective(comm, a, tag, async ? request : nullptr, info);
  });
}
}  // namespace

CHORUS_API chorusResult_t chorusAllToAllv(const void* sendbuf, const size_t* sendcounts,
                                          const size_t* sdispls, void* recvbuf,
                                          const size_t* recvcounts, const size_t* rdispls,
                                          chorusDataType_t dtype, chorusComm_t comm,
                                          chorusOpInfo_t* info) {
  return allToAllvEntry(sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls, dtype, 0, comm,
                        nullptr, false, info);
}
CHORUS_API chorusResult_t chorusGather(const void* sendbuf, void* recvbuf, size_t count,
                                       chorusDataType_t dtype, int root, chorusComm_t comm,
                                       chorusOpInfo_t* info) {
  return entry(comm, makeArgs(Collective::kGather, sendbuf, recvbuf, count, dtype, 0, root), 0,
               nullptr, false, info);
}
CHORUS_API chorusResult_t chorusScatter(const void* sendbuf, void* recvbuf, size_t count,
                                        chorusDataType_t dtype, int root, chorusComm_t comm,
                                        chorusOpInfo_t* info) {
  return entry(comm, makeArgs(Collective::kScatter, sendbuf, recvbuf, count, dtype, 0, root), 0,
               nullptr, false, info);
}
CHORUS_API chorusResult_t chorusBarrier(chorusComm_t comm) {
  return entry(comm, makeArgs(Collective::kBarrier, nullptr, nullptr, 0, chorusUint8, 0, 0), 0,
               nullptr, false, nullptr);
}

CHORUS_API chorusResult_t chorusBroadcastAsync(const void* sendbuf, void* recvbuf, size_t count,
                                               chorusDataType_t dtype, int root, uint64_t tag,
                                               chorusComm_t comm, chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kBroadcast, sendbuf, recvbuf, count, dtype, 0, root), tag,
               request, true, nullptr);
}
CHORUS_API chorusResult_t chorusReduceAsync(const void* sendbuf, void* recvbuf, size_t count,
                                            chorusDataType_t dtype, chorusRedOp_t op, int root,
                                            uint64_t tag, chorusComm_t comm,
                                            chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kReduce, sendbuf, recvbuf, count, dtype, op, root), tag,
               request, true, nullptr);
}
CHORUS_API chorusResult_t chorusAllGatherAsync(const void* sendbuf, void* recvbuf, size_t sendcount,
                                               chorusDataType_t dtype, uint64_t tag,
                                               chorusComm_t comm, chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kAllGather, sendbuf, recvbuf, sendcount, dtype, 0, 0),
               tag, request, true, nullptr);
}
CHORUS_API chorusResult_t chorusReduceScatterAsync(const void* sendbuf, void* recvbuf,
                                                   size_t recvcount, chorusDataType_t dtype,
                                                   chorusRedOp_t op, uint64_t tag,
                                                   chorusComm_t comm, chorusRequest_t* request) {
  return entry(comm,
               makeArgs(Collective::kReduceScatter, sendbuf, recvbuf, recvcount, dtype, op, 0), tag,
               request, true, nullptr);
}
CHORUS_API chorusResult_t chorusAllToAllAsync(const void* sendbuf, void* recvbuf, size_t count,
                                              chorusDataType_t dtype, uint64_t tag,
                                              chorusComm_t comm, chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kAllToAll, sendbuf, recvbuf, count, dtype, 0, 0), tag,
               request, true, nullptr);
}
CHORUS_API chorusResult_t chorusAllToAllvAsync(const void* sendbuf, const size_t* sendcounts,
                                               const size_t* sdispls, void* recvbuf,
                                               const size_t* recvcounts, const size_t* rdispls,
                                               chorusDataType_t dtype, uint64_t tag,
                                               chorusComm_t comm, chorusRequest_t* request) {
  return allToAllvEntry(sendbuf, sendcounts, sdispls, recvbuf, recvcounts, rdispls, dtype, tag,
                        comm, request, true, nullptr);
}
CHORUS_API chorusResult_t chorusGatherAsync(const void* sendbuf, void* recvbuf, size_t count,
                                            chorusDataType_t dtype, int root, uint64_t tag,
                                            chorusComm_t comm, chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kGather, sendbuf, recvbuf, count, dtype, 0, root), tag,
               request, true, nullptr);
}
CHORUS_API chorusResult_t chorusScatterAsync(const void* sendbuf, void* recvbuf, size_t count,
                                             chorusDataType_t dtype, int root, uint64_t tag,
                                             chorusComm_t comm, chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kScatter, sendbuf, recvbuf, count, dtype, 0, root), tag,
               request, true, nullptr);
}
CHORUS_API chorusResult_t chorusBarrierAsync(uint64_t tag, chorusComm_t comm,
                                             chorusRequest_t* request) {
  return entry(comm, makeArgs(Collective::kBarrier, nullptr, nullptr, 0, chorusUint8, 0, 0), tag,
               request, true, nullptr);
}

// ---- point to point ---------------------------------------------------------

CHORUS_API chorusResult_t chorusSend(const void* sendbuf, size_t count, chorusDataType_t dtype,
                                     int peer, uint32_t tag, chorusComm_t comm) {
  return p2pEntry(Collective::kSend, sendbuf, nullptr, count, dtype, peer, tag, comm);
}
CHORUS_API chorusResult_t chorusRecv(void* recvbuf, size_t count, chorusDataType_t dtype, int peer,
                                     uint32_t tag, chorusComm_t comm) {
  return p2pEntry(Collective::kRecv, nullptr, recvbuf, count, dtype, peer, tag, comm);
}
CHORUS_API chorusResult_t chorusGroupStart(void) {
  return guard(nullptr, []() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    ++tGroupDepth;
    return Status::ok();
  });
}
CHORUS_API chorusResult_t chorusGroupEnd(void) {
  chorusComm_t last = nullptr;
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    if (tGroupDepth <= 0)
      return chorus::failedPrecondition("chorusGroupEnd without chorusGroupStart");
    if (--tGroupDepth > 0) return Status::ok();
    std::vector<GroupCall> calls;
    calls.swap(tGroup);
    // Issue everything, then wait for everything: a ring of sends and
    // receives completes because no call waits before all are posted.
    std::vector<std::pair<chorusComm_t, std::shared_ptr<chorus::OpResult>>> pending;
    Status first;
    for (GroupCall& c : calls) {
      if (c.comm->magic != chorusComm::kMagic) {
        first = chorus::invalidArgument("a communicator used in the group was destroyed");
        continue;
      }
      auto r = c.comm->impl->runAsync(c.args, c.tag);
      if (!r.isOk()) {
        if (first.isOk()) first = r.status();
        record(c.comm, r.status());
        continue;
      }
      pending.emplace_back(c.comm, std::move(r).value());
    }
    for (auto& [comm, r] : pending) {
      Status st = comm->impl->wait(r, nullptr);
      if (!st.isOk()) {
        record(comm, st);
        if (first.isOk()) first = st;
      }
      last = comm;
    }
    return first;
  });
}

// ---- shared state ---------------------------------------------------------------

CHORUS_API chorusResult_t chorusStateRegister(chorusComm_t comm, const char* name, void* buffer,
                                              size_t count, chorusDataType_t dtype,
                                              unsigned flags) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!name) return chorus::invalidArgument("name is NULL");
    if (static_cast<int>(dtype) < 0 || static_cast<int>(dtype) >= chorusNumDataTypes)
      return chorus::invalidArgument("unknown dtype " + std::to_string(static_cast<int>(dtype)));
    if (flags & ~(CHORUS_STATE_NO_EQUALITY | CHORUS_STATE_CUDA_DEVICE))
      return chorus::invalidArgument("unknown shared-state flags " + std::to_string(flags));
    if ((flags & CHORUS_STATE_CUDA_DEVICE) && count > 0) {
      std::string why = chorus::cuda::checkDevicePointer(buffer);
      if (!why.empty())
        return Status(chorus::cuda::available() ? Code::kInvalidArgument : Code::kUnimplemented,
                      std::string("shared-state buffer '") + name +
                          "' flagged CHORUS_STATE_CUDA_DEVICE: " + why);
    }
    chorus::state::Buffer b;
    b.data = buffer;
    b.count = count;
    b.dtype = static_cast<chorus::DataType>(dtype);
    b.checkEquality = !(flags & CHORUS_STATE_NO_EQUALITY);
    b.device = (flags & CHORUS_STATE_CUDA_DEVICE) != 0;
    if (count > (SIZE_MAX >> 4) / chorus::dataTypeSize(b.dtype))
      return chorus::invalidArgument("count " + std::to_string(count) + " is too large");
    return comm->state.add(name, b);
  });
}
CHORUS_API chorusResult_t chorusStateUnregister(chorusComm_t comm, const char* name) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!name) return chorus::invalidArgument("name is NULL");
    return comm->state.remove(name);
  });
}
CHORUS_API chorusResult_t chorusStateSetRevision(chorusComm_t comm, uint64_t revision) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    comm->state.setRevision(revision);
    return Status::ok();
  });
}
CHORUS_API chorusResult_t chorusStateGetRevision(chorusComm_t comm, uint64_t* revision) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!revision) return chorus::invalidArgument("revision is NULL");
    *revision = comm->state.revision();
    return Status::ok();
  });
}
CHORUS_API chorusResult_t chorusSyncSharedState(chorusComm_t comm, chorusStateStrategy_t strategy,
                                                chorusStateSyncInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (strategy != chorusStateEnforcePopular && strategy != chorusStateReceiveOnly &&
        strategy != chorusStateSendOnly)
      return chorus::invalidArgument("unknown shared-state strategy " +
                                     std::to_string(static_cast<int>(strategy)));
    if (info && info->size < sizeof(chorusStateSyncInfo_t))
      return chorus::invalidArgument("info->size must be sizeof(chorusStateSyncInfo_t)");
    CHORUS_ASSIGN_OR_RETURN(
        auto r, comm->state.sync(*comm->impl, static_cast<chorus::state::Strategy>(strategy)));
    if (info) {
      info->revision = r.revision;
      info->stateHash = r.stateHash;
      info->rounds = r.rounds;
      info->peersUpdated = r.peersUpdated;
      info->bytesSent = r.bytesSent;
      info->bytesReceived = r.bytesReceived;
    }
    return Status::ok();
  });
}

// ---- topology -------------------------------------------------------------------

CHORUS_API chorusResult_t chorusOptimizeTopology(chorusComm_t comm) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    // It needs the communicator idle: let the background snapshot
    // protection started at connect/update finish first.
    joinBackground(comm);
    return comm->impl->optimizeTopology();
  });
}

CHORUS_API chorusResult_t chorusDescribeSelection(chorusComm_t comm, char* buffer, size_t length) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!buffer) return chorus::invalidArgument("buffer is NULL");
    std::string text = comm->impl->describeSelection();
    if (length < text.size() + 1)
      return chorus::invalidArgument("buffer of " + std::to_string(length) +
                                     " bytes is too small; " + std::to_string(text.size() + 1) +
                                     " needed");
    std::memcpy(buffer, text.c_str(), text.size() + 1);
    return Status::ok();
  });
}

}  // extern "C"

// ---- erasure-coded snapshots ------------------------------------------------------

namespace {
Status checkShards(int dataShards, int parityShards) {
  if (dataShards < 1 || parityShards < 1 ||
      dataShards + parityShards > chorus::state::ErasureCode::kMaxShards)
    return chorus::invalidArgument(
        "a snapshot needs dataShards >= 1, parityShards >= 1 and dataShards + parityShards <= " +
        std::to_string(chorus::state::ErasureCode::kMaxShards) + " (got " +
        std::to_string(dataShards) + " + " + std::to_string(parityShards) + ")");
  return Status::ok();
}
}  // namespace

CHORUS_API chorusResult_t chorusSnapshot(chorusComm_t comm, int dataShards, int parityShards,
                                         const char* spillDirectory, chorusSnapshotInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkSnapshotInfo(info));
    CHORUS_RETURN_IF_ERROR(checkShards(dataShards, parityShards));
    joinBackground(comm);
    CHORUS_ASSIGN_OR_RETURN(auto r,
                            comm->snapshots.take(*comm->impl, comm->state, dataShards, parityShards,
                                                 spillDirectory ? spillDirectory : ""));
    fillSnapshotInfo(info, r);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusSnapshotAsync(chorusComm_t comm, int dataShards, int parityShards,
                                              const char* spillDirectory,
                                              chorusRequest_t* request) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!request) return chorus::invalidArgument("request is NULL");
    *request = nullptr;
    CHORUS_RETURN_IF_ERROR(checkShards(dataShards, parityShards));
    joinBackground(comm);
    auto result = std::make_shared<chorus::OpResult>();
    auto* req = new chorusRequest();
    req->comm = comm->impl;
    req->result = result;
    std::string dir = spillDirectory ? spillDirectory : "";
    std::lock_guard<std::mutex> lk(comm->bgMu);
    comm->background.emplace_back([comm, impl = comm->impl, result, dataShards, parityShards, dir] {
      auto r = comm->snapshots.take(*impl, comm->state, dataShards, parityShards, dir);
      if (r.isOk()) {
        result->info.bytesSent = r.value().bytesSent;
        result->info.bytesReceived = r.value().bytesReceived;
        result->info.algorithm = "snapshot";
      }
      result->status = r.status();
      result->finished.store(true, std::memory_order_release);
      impl->wake();
    });
    *request = req;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusRecover(chorusComm_t comm, uint64_t adoptPeerId,
                                        chorusSnapshotInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkSnapshotInfo(info));
    joinBackground(comm);
    CHORUS_ASSIGN_OR_RETURN(auto r, comm->snapshots.recover(*comm->impl, comm->state, adoptPeerId));
    fillSnapshotInfo(info, r);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusSnapshotProtect(chorusComm_t comm, chorusSnapshotInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkSnapshotInfo(info));
    joinBackground(comm);
    CHORUS_ASSIGN_OR_RETURN(auto r, comm->snapshots.protect(*comm->impl));
    fillSnapshotInfo(info, r);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusSnapshotLoad(chorusComm_t comm, const char* directory,
                                             chorusSnapshotInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(checkSnapshotInfo(info));
    if (!directory || !*directory) return chorus::invalidArgument("directory is NULL or empty");
    joinBackground(comm);
    CHORUS_ASSIGN_OR_RETURN(auto r, comm->snapshots.load(directory));
    fillSnapshotInfo(info, r);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusSnapshotGetInfo(chorusComm_t comm, chorusSnapshotInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    if (!info) return chorus::invalidArgument("info is NULL");
    CHORUS_RETURN_IF_ERROR(checkSnapshotInfo(info));
    fillSnapshotInfo(info, comm->snapshots.describe());
    return Status::ok();
  });
}

// ---- compression ---------------------------------------------------------------

namespace {
Status requireCodec(chorusCodec_t codec) {
  CHORUS_RETURN_IF_ERROR(requireInit());
  if (!codec) return chorus::invalidArgument("codec is NULL");
  if (codec->magic != chorusCodec::kMagic)
    return chorus::invalidArgument("codec is not a valid codec (destroyed?)");
  return Status::ok();
}
Status checkCodecDtype(chorusDataType_t dtype) {
  if (dtype != chorusFloat32 && dtype != chorusFloat16 && dtype != chorusBfloat16)
    return chorus::invalidArgument("codecs take float, half or bfloat16 values (dtype " +
                                   std::to_string(static_cast<int>(dtype)) + ")");
  return Status::ok();
}
// Both buffers in CUDA device memory: the CUDA codec runs (float only);
// both in host memory: the CPU codec; one of each: refused.
chorus::Result<bool> deviceCodecCall(const void* a, const void* b, chorusDataType_t dtype) {
  if (!chorus::cuda::available()) return false;
  bool da = chorus::cuda::checkDevicePointer(a).empty();
  bool db = chorus::cuda::checkDevicePointer(b).empty();
  if (da != db)
    return chorus::invalidArgument("codec buffers must both be host or both be CUDA device memory");
  if (da && dtype != chorusFloat32)
    return Status(Code::kUnimplemented, "the CUDA codecs take float values on the device");
  return da;
}
Status checkCount(size_t count) {
  if (count > (SIZE_MAX >> 4) / 4) return chorus::invalidArgument("count is too large");
  return Status::ok();
}
}  // namespace

CHORUS_API chorusResult_t chorusCodecParamsInit(chorusCodecParams_t* params,
                                                chorusCodecKind_t kind) {
  return guard(nullptr, [&]() -> Status {
    if (!params) return chorus::invalidArgument("params is NULL");
    if (static_cast<int>(kind) < 0 || kind >= chorusNumCodecs)
      return chorus::invalidArgument("unknown codec kind " +
                                     std::to_string(static_cast<int>(kind)));
    std::memset(params, 0, sizeof(*params));
    params->size = sizeof(*params);
    params->kind = kind;
    params->blockSize = 256;
    params->topkPerBlock = 8;
    params->errorFeedback =
        kind == chorusCodecOneBit || kind == chorusCodecTopK || kind == chorusCodecTopKGlobal;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCodecCreate(const chorusCodecParams_t* params,
                                            chorusCodec_t* codec) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireInit());
    if (!params || !codec) return chorus::invalidArgument("params or codec is NULL");
    *codec = nullptr;
    if (params->size < sizeof(chorusCodecParams_t))
      return chorus::invalidArgument("params->size must be sizeof(chorusCodecParams_t)");
    chorus::codec::Params p;
    p.kind = static_cast<chorus::codec::Kind>(params->kind);
    p.blockSize = params->blockSize;
    p.topk = params->topkPerBlock;
    p.stochastic = params->stochasticRounding != 0;
    p.seed = params->seed;
    CHORUS_RETURN_IF_ERROR(chorus::kernels::validateCodec(p));
    auto* c = new chorusCodec();
    c->impl.params = p;
    c->impl.errorFeedback = params->errorFeedback != 0;
    *codec = c;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCodecDestroy(chorusCodec_t codec) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireCodec(codec));
    codec->magic = 0;
    delete codec;
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCodecReset(chorusCodec_t codec) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireCodec(codec));
    codec->impl.reset();
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCodecEncodedBytes(chorusCodec_t codec, size_t count,
                                                  size_t* bytes) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireCodec(codec));
    CHORUS_RETURN_IF_ERROR(checkCount(count));
    CHORUS_RETURN_IF_ERROR(chorus::kernels::checkCodecCount(codec->impl.params, count));
    if (!bytes) return chorus::invalidArgument("bytes is NULL");
    *bytes = chorus::codec::encodedBytes(codec->impl.params, count);
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCodecEncode(chorusCodec_t codec, const void* values, size_t count,
                                            chorusDataType_t dtype, void* out, size_t outBytes) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireCodec(codec));
    CHORUS_RETURN_IF_ERROR(checkCodecDtype(dtype));
    CHORUS_RETURN_IF_ERROR(checkCount(count));
    CHORUS_RETURN_IF_ERROR(chorus::kernels::checkCodecCount(codec->impl.params, count));
    if (count && (!values || !out)) return chorus::invalidArgument("values or out is NULL");
    size_t need = chorus::codec::encodedBytes(codec->impl.params, count);
    if (outBytes < need)
      return chorus::invalidArgument("out has " + std::to_string(outBytes) +
                                     " bytes, the encoding needs " + std::to_string(need));
    CHORUS_ASSIGN_OR_RETURN(bool onDevice, deviceCodecCall(values, out, dtype));
    if (onDevice && codec->impl.params.kind == chorus::codec::kTopKGlobal)
      return Status(Code::kUnimplemented, "global top-k runs on host buffers only");
    if (onDevice) {
      std::string e = chorus::cuda::encode(codec->impl.params, static_cast<const float*>(values),
                                           count, 0, static_cast<uint8_t*>(out));
      return e.empty() ? Status::ok() : Status(Code::kSystem, e);
    }
    std::vector<float> f(count);
    auto t = static_cast<chorus::DataType>(dtype);
    for (size_t i = 0; i < count && t != chorus::DataType::kFloat32; ++i) {
      uint16_t h = static_cast<const uint16_t*>(values)[i];
      f[i] = t == chorus::DataType::kFloat16 ? chorus::halfToFloat(h) : chorus::bf16ToFloat(h);
    }
    if (t == chorus::DataType::kFloat32 && count) std::memcpy(f.data(), values, count * 4);
    chorus::kernels::encode(codec->impl.params, f.data(), count, 0, static_cast<uint8_t*>(out));
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusCodecDecode(chorusCodec_t codec, const void* in, size_t inBytes,
                                            void* values, size_t count, chorusDataType_t dtype) {
  return guard(nullptr, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireCodec(codec));
    CHORUS_RETURN_IF_ERROR(checkCodecDtype(dtype));
    CHORUS_RETURN_IF_ERROR(checkCount(count));
    CHORUS_RETURN_IF_ERROR(chorus::kernels::checkCodecCount(codec->impl.params, count));
    if (count && (!values || !in)) return chorus::invalidArgument("values or in is NULL");
    CHORUS_ASSIGN_OR_RETURN(bool onDevice, deviceCodecCall(values, in, dtype));
    if (onDevice && codec->impl.params.kind == chorus::codec::kTopKGlobal)
      return Status(Code::kUnimplemented, "global top-k runs on host buffers only");
    if (onDevice) {
      if (inBytes != chorus::codec::encodedBytes(codec->impl.params, count))
        return Status(Code::kDataLoss, "compressed data has " + std::to_string(inBytes) +
                                           " bytes, not the encoding of " + std::to_string(count) +
                                           " values");
      std::string e = chorus::cuda::decode(codec->impl.params, static_cast<const uint8_t*>(in),
                                           count, static_cast<float*>(values));
      return e.empty() ? Status::ok() : Status(Code::kSystem, e);
    }
    std::vector<float> f(count);
    CHORUS_RETURN_IF_ERROR(chorus::kernels::decode(
        codec->impl.params, static_cast<const uint8_t*>(in), inBytes, count, f.data()));
    auto t = static_cast<chorus::DataType>(dtype);
    for (size_t i = 0; i < count; ++i) {
      if (t == chorus::DataType::kFloat32)
        static_cast<float*>(values)[i] = f[i];
      else
        static_cast<uint16_t*>(values)[i] =
            t == chorus::DataType::kFloat16 ? chorus::floatToHalf(f[i]) : chorus::floatToBf16(f[i]);
    }
    return Status::ok();
  });
}

CHORUS_API chorusResult_t chorusAllReduceCompressed(const void* sendbuf, void* recvbuf,
                                                    size_t count, chorusDataType_t dtype,
                                                    chorusRedOp_t op, chorusCodec_t codec,
                                                    chorusComm_t comm, chorusOpInfo_t* info) {
  return guard(comm, [&]() -> Status {
    CHORUS_RETURN_IF_ERROR(requireComm(comm));
    CHORUS_RETURN_IF_ERROR(requireCodec(codec));
    CHORUS_RETURN_IF_ERROR(checkInfo(info));
    CHORUS_RETURN_IF_ERROR(checkCodecDtype(dtype));
    CHORUS_RETURN_IF_ERROR(checkCount(count));
    if (count && (!sendbuf || !recvbuf))
      return chorus::invalidArgument("sendbuf or recvbuf is NULL");
    if (static_cast<int>(op) < 0 || op >= chorusNumRedOps)
      return chorus::invalidArgument("unknown reduction op");
    CHORUS_RETURN_IF_ERROR(chorus::kernels::checkCodecCount(codec->impl.params, count));
    chorus::OpInfo oi;
    CHORUS_RETURN_IF_ERROR(chorus::compress::allReduceCompressed(
        *comm->impl, codec->impl, sendbuf, recvbuf, count, static_cast<chorus::DataType>(dtype),
        static_cast<chorus::RedOp>(op), &oi));
    fillInfo(info, oi);
    return Status::ok();
  });
}
