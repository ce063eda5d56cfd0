#include "src/protocol/frame.h"

#include "src/protocol/wire.h"

namespace chorus::frame {

// Layout (little-endian):
//  0 u32 magic | 4 u8 version | 5 u8 type | 6 u16 flags | 8 u32 length
// 12 u32 block | 16 u64 epoch | 24 u64 tag | 32 u64 seq | 40 u64 desc
void encode(const Header& h, uint8_t out[kHeaderSize]) {
  wire::storeU32(out + 0, kMagic);
  out[4] = kVersion;
  out[5] = static_cast<uint8_t>(h.type);
  wire::storeU16(out + 6, h.flags);
  wire::storeU32(out + 8, h.length);
  wire::storeU32(out + 12, h.block);
  wire::storeU64(out + 16, h.epoch);
  wire::storeU64(out + 24, h.tag);
  wire::storeU64(out + 32, h.seq);
  wire::storeU64(out + 40, h.desc);
}

Status decode(const uint8_t in[kHeaderSize], Header* h) {
  uint32_t magic = wire::loadU32(in);
  if (magic != kMagic) return protocolError("frame has bad magic (not a Chorus data frame)");
  if (in[4] != kVersion)
    return protocolError("frame version " + std::to_string(in[4]) + " not supported (expected " +
                         std::to_string(kVersion) + ")");
  uint8_t type = in[5];
  if (type < static_cast<uint8_t>(Type::kData) || type > static_cast<uint8_t>(Type::kResult))
    return protocolError("unknown frame type " + std::to_string(type));
  h->type = static_cast<Type>(type);
  h->flags = wire::loadU16(in + 6);
  h->length = wire::loadU32(in + 8);
  if (h->length > kMaxPayload)
    return protocolError("frame payload of " + std::to_string(h->length) +
                         " bytes exceeds the limit of " + std::to_string(kMaxPayload));
  h->block = wire::loadU32(in + 12);
  h->epoch = wire::loadU64(in + 16);
  h->tag = wire::loadU64(in + 24);
  h->seq = wire::loadU64(in + 32);
  h->desc = wire::loadU64(in + 40);
  return Status::ok();
}

const char* typeName(Type t) {
  switch (t) {
    case Type::kData:
      return "DATA";
    case Type::kDone:
      return "DONE";
    case Type::kAbort:
      return "ABORT";
    case Type::kPing:
      return "PING";
    case Type::kPong:
      return "PONG";
    case Type::kStreamLost:
      return "STREAM_LOST";
    case Type::kResult:
      return "RESULT";
  }
  return "?";
}

}  // namespace chorus::frame
