// Data-plane frames between peers: a fixed 48-byte header, then `length`
// payload bytes. Every frame names the epoch and the operation (tag, seq) it
// belongs to, so frames of an old epoch or an unknown operation are
// recognised and dropped instead of corrupting another operation.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "src/core/status.h"

namespace chorus::frame {

constexpr uint32_t kMagic = 0x46524843u;  // "CHRF" little-endian
// 2: DATA frames may carry the DONE before them (kFlagAfterDone).
constexpr uint8_t kVersion = 2;
constexpr size_t kHeaderSize = 48;
// Largest payload a frame may announce; larger is a protocol error. Senders
// cut transfers into segments far below this.
constexpr uint32_t kMaxPayload = 64u << 20;

enum class Type : uint8_t {
  kData = 1,   // payload = one block of an operation
  kDone = 2,   // sender holds the operation's full result (completion agreement)
  kAbort = 3,  // sender failed the operation; payload = UTF-8 reason; block = Code
  kPing = 4,   // latency/bandwidth probe (payload echoed)
  kPong = 5,
  // The sender closed its end of connection `tag` (its generation: 0 for the
  // first) of stream `block` (it broke) and received `seq` frames on it whole;
  // the frames after those are resent. On any open stream, the replacement of
  // the lost one included; sent again while unsettled, so duplicates are
  // ignored.
  kStreamLost = 6,
  // A member that returned success without the others' DONE sends the
  // operation's result (payload) to each member it has no DONE from, with
  // the commit of a view change that decided the operation successful: a
  // member left without some input (its sender died) completes from it.
  kResult = 7,
};

// On a DATA frame: the sender's DONE of the call before this one (same tag,
// seq - 1, same epoch and descriptor) comes first; the receiver handles it as
// if it had arrived as its own frame just before. A small call's lazy DONE
// (see Communicator::checkOp) rides with the next call's data: one header to
// write, read and parse instead of two.
constexpr uint16_t kFlagAfterDone = 1;

struct Header {
  Type type = Type::kData;
  uint16_t flags = 0;
  uint32_t length = 0;  // payload bytes
  uint32_t block = 0;   // block index within the operation (kAbort: status code)
  uint64_t epoch = 0;
  uint64_t tag = 0;
  uint64_t seq = 0;
  uint64_t desc = 0;  // hash of (collective, count, dtype, op): detects mismatched calls
};

void encode(const Header& h, uint8_t out[kHeaderSize]);
// Validates magic, version, type and length bounds.
Status decode(const uint8_t in[kHeaderSize], Header* out);
const char* typeName(Type t);

}  // namespace chorus::frame
