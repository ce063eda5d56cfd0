// Algorithms are Tasks: state machines posted by the communicator and driven
// by arriving frames. A Task never blocks and never touches a socket; it asks
// its TaskContext to send blocks and says where incoming blocks go.
//
// Each algorithm lives in its own file (algorithms/<collective>/<name>.cc)
// and registers an AlgorithmInfo (id, name, one-line description, factory).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "src/core/dtype.h"
#include "src/core/status.h"

namespace chorus::algo {

enum class Collective : uint8_t { kAllReduce = 1 };
const char* collectiveName(Collective c);

// What the caller asked for.
struct CollectiveArgs {
  Collective collective = Collective::kAllReduce;
  const void* sendbuf = nullptr;
  void* recvbuf = nullptr;
  size_t count = 0;
  DataType dtype = DataType::kFloat32;
  RedOp op = RedOp::kSum;
  bool inPlace() const { return sendbuf == recvbuf; }
};

// Services the communicator provides to a running task.
class TaskContext {
 public:
  virtual ~TaskContext() = default;
  virtual int rank() const = 0;
  virtual int size() const = 0;
  // Queue block `block` of this operation to peer `toRank`. data must stay
  // valid until the operation completes (the communicator tracks the send).
  virtual void send(int toRank, uint32_t block, const void* data, size_t bytes) = 0;
  // Scratch memory owned by the operation, zero-initialisation not promised.
  virtual uint8_t* scratch(size_t bytes) = 0;
  // Largest payload of one frame for this transport (segment size hint).
  virtual size_t segmentBytes() const = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  // Post the first sends.
  virtual Status start() = 0;
  // Where block `block` from `fromRank` of `bytes` bytes should land, or an
  // error if the task expects no such block (a protocol violation).
  virtual Result<uint8_t*> recvTarget(int fromRank, uint32_t block, size_t bytes) = 0;
  // That block has landed.
  virtual Status onRecv(int fromRank, uint32_t block) = 0;
  // The result is complete in recvbuf.
  virtual bool haveAll() const = 0;
  // An in-place operation has overwritten part of its input.
  virtual bool inputModified() const = 0;
};

using TaskFactory = std::unique_ptr<Task> (*)(const CollectiveArgs& args, TaskContext& ctx);

struct AlgorithmInfo {
  uint8_t id;  // stable: part of every frame's descriptor
  Collective collective;
  const char* name;         // CHORUS_ALGO / chorus-bench --algo name
  const char* description;  // one line
  TaskFactory factory;
};

// All registered algorithms (algorithms/registry.cc).
const std::vector<const AlgorithmInfo*>& allAlgorithms();
const AlgorithmInfo* findAlgorithm(Collective c, const std::string& name);
const AlgorithmInfo* findAlgorithm(uint8_t id);

// Chunk c of n equal parts of count elements: [chunkBegin(c), chunkBegin(c+1)).
inline size_t chunkBegin(size_t count, int n, int c) {
  size_t base = count / static_cast<size_t>(n), rem = count % static_cast<size_t>(n);
  size_t cc = static_cast<size_t>(c);
  return base * cc + (cc < rem ? cc : rem);
}

}  // namespace chorus::algo
