#include "transports/shm/ring.h"

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

namespace chorus::transport::shm {

namespace {
size_t mapSize(size_t capacity) {
  return sizeof(RingHeader) + capacity;
}
}  // namespace

Result<Ring*> Ring::create(const std::string& name, size_t capacity) {
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd < 0) return systemError("shm_open(" + name + ")", errno);
  if (::ftruncate(fd, static_cast<off_t>(mapSize(capacity))) != 0) {
    int e = errno;
    ::close(fd);
    ::shm_unlink(name.c_str());
    return systemError("ftruncate(" + name + ")", e);
  }
  // Reserve the pages now: a sparse segment on a /dev/shm too small for it
  // (containers often get 64 MiB) would kill the process with SIGBUS at the
  // first write past the space; failing here keeps the link on TCP instead.
  if (int e = ::posix_fallocate(fd, 0, static_cast<off_t>(mapSize(capacity))); e != 0) {
    ::close(fd);
    ::shm_unlink(name.c_str());
    return systemError("reserving " + std::to_string(mapSize(capacity) >> 10) + " KiB for " + name,
                       e);
  }
  // MAP_POPULATE (here and in open()): map every page now. Left to first
  // touch, small frames fault their way through a 1 MiB ring for its first
  // few hundred operations, and with more processes than cores each fault
  // waits for a scheduler slot: at N=8 on 2 cores a 4 KiB all-reduce took
  // 3.3-3.5 ms per operation until the rings had wrapped, 0.3 ms after.
  void* p =
      ::mmap(nullptr, mapSize(capacity), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) {
    ::shm_unlink(name.c_str());
    return systemError("mmap(" + name + ")", e);
  }
  auto* r = new Ring();
  r->hdr_ = new (p) RingHeader();
  r->hdr_->capacity = capacity;
  r->hdr_->head.store(0);
  r->hdr_->tail.store(0);
  r->hdr_->readerArmed.store(0);
  r->hdr_->writerArmed.store(0);
  r->data_ = static_cast<uint8_t*>(p) + sizeof(RingHeader);
  // Touch every page once now, too (the reader does in open()). In this VM
  // (a Firecracker guest) a populated page still costs each process a stall
  // at its first access, with no page fault counted: 60-130 us every 32 KiB,
  // about 2 ms per MiB, which the first pass of small frames through the
  // ring paid in the middle of operations (a 4-byte all-reduce at N=2 had a
  // 100 us stall every 328 calls until the ring wrapped). Here it is paid
  // once, at link set-up.
  std::memset(r->data_, 0, capacity);
  r->mapped_ = mapSize(capacity);
  r->name_ = name;
  r->linked_ = true;
  std::atomic_thread_fence(std::memory_order_release);
  r->hdr_->magic = kMagic;
  return r;
}

Result<Ring*> Ring::open(const std::string& name) {
  int fd = ::shm_open(name.c_str(), O_RDWR | O_CLOEXEC, 0600);
  if (fd < 0) return systemError("shm_open(" + name + ")", errno);
  struct stat st;
  if (::fstat(fd, &st) != 0 || st.st_size < static_cast<off_t>(sizeof(RingHeader))) {
    ::close(fd);
    return protocolError("shared-memory ring " + name + " is truncated");
  }
  size_t size = static_cast<size_t>(st.st_size);
  void* p = ::mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
  int e = errno;
  ::close(fd);
  if (p == MAP_FAILED) return systemError("mmap(" + name + ")", e);
  auto* hdr = static_cast<RingHeader*>(p);
  std::atomic_thread_fence(std::memory_order_acquire);
  if (hdr->magic != kMagic || mapSize(hdr->capacity) != size) {
    ::munmap(p, size);
    return protocolError("shared-memory ring " + name + " has a bad header");
  }
  // As in create(): first touches here, not during operations.
  const auto* bytes = static_cast<const volatile uint8_t*>(p);
  for (size_t at = 0; at < size; at += 4096) (void)bytes[at];
  auto* r = new Ring();
  r->hdr_ = hdr;
  r->headSeen_ = hdr->head.load(std::memory_order_acquire);
  r->data_ = static_cast<uint8_t*>(p) + sizeof(RingHeader);
  r->mapped_ = size;
  r->name_ = name;
  r->linked_ = true;
  return r;
}

Ring::~Ring() {
  if (linked_) ::shm_unlink(name_.c_str());
  if (hdr_) ::munmap(hdr_, mapped_);
}

void Ring::unlinkName() {
  if (linked_) ::shm_unlink(name_.c_str());
  linked_ = false;
}

size_t Ring::readable() const {
  return static_cast<size_t>(hdr_->tail.load(std::memory_order_acquire) -
                             hdr_->head.load(std::memory_order_relaxed));
}
size_t Ring::writable() const {
  headSeen_ = hdr_->head.load(std::memory_order_acquire);
  return hdr_->capacity -
         static_cast<size_t>(hdr_->tail.load(std::memory_order_relaxed) - headSeen_);
}

// Stores of head and tail are release, not sequentially consistent: the
// wake-up protocol's ordering (index store, then armed-flag load) comes from
// the fence the connection issues after a whole gather or scatter. A
// sequentially consistent store is an xchg that waits for the cache line the
// other side is polling; at N=2 with 4-byte all-reduces the two xchg per
// frame were a quarter of the CPU time.
size_t Ring::write(const ::iovec* iov, int n) {
  const uint64_t cap = hdr_->capacity;
  const uint64_t tail = hdr_->tail.load(std::memory_order_relaxed);
  size_t want = 0;
  for (int i = 0; i < n; ++i) want += iov[i].iov_len;
  // The reader's head is read only when the last one seen leaves too little
  // room: loading it on every write was a cache miss on the line the reader
  // had just written, and made the reader's next store to it miss too.
  if (cap - (tail - headSeen_) < want) headSeen_ = hdr_->head.load(std::memory_order_acquire);
  size_t room = static_cast<size_t>(cap - (tail - headSeen_)), total = 0;
  for (int i = 0; i < n && room > 0; ++i) {
    const auto* p = static_cast<const uint8_t*>(iov[i].iov_base);
    size_t len = std::min(iov[i].iov_len, room);
    size_t at = static_cast<size_t>((tail + total) % cap), first = std::min(len, cap - at);
    std::memcpy(data_ + at, p, first);
    std::memcpy(data_, p + first, len - first);
    total += len;
    room -= len;
  }
  // One publication for the whole gather: the reader sees a frame's header
  // and payload together, and pays one cache-line transfer for them.
  if (total > 0) hdr_->tail.store(tail + total, std::memory_order_release);
  return total;
}

size_t Ring::write(const uint8_t* p, size_t len) {
  ::iovec v{const_cast<uint8_t*>(p), len};
  return write(&v, 1);
}

Ring::Pieces Ring::peek(size_t limit) const {
  const uint64_t cap = hdr_->capacity;
  const uint64_t head = hdr_->head.load(std::memory_order_relaxed);
  // Ask for the lines the next frame lands in while the tail is fetched: a
  // spinning reader then has them on the way when the tail moves, instead of
  // missing on them one after the other (~1.5% of a 4-byte all-reduce at
  // N=2, interleaved A/B). A prefetch past the mapping does not fault.
  const uint8_t* next = data_ + head % cap;
  __builtin_prefetch(next);
  __builtin_prefetch(next + 64);
  const uint64_t tail = hdr_->tail.load(std::memory_order_acquire);
  Pieces p;
  size_t n = static_cast<size_t>(std::min<uint64_t>(limit, tail - head));
  size_t at = static_cast<size_t>(head % cap);
  p.first = data_ + at;
  p.firstLen = std::min<size_t>(n, cap - at);
  p.second = data_;
  p.secondLen = n - p.firstLen;
  return p;
}

void Ring::consume(size_t n) {
  const uint64_t head = hdr_->head.load(std::memory_order_relaxed);
  hdr_->head.store(head + n, std::memory_order_release);
}

size_t Ring::read(const ::iovec* iov, int n) {
  const uint64_t cap = hdr_->capacity;
  const uint64_t head = hdr_->head.load(std::memory_order_relaxed);
  const uint64_t tail = hdr_->tail.load(std::memory_order_acquire);
  size_t avail = static_cast<size_t>(tail - head), total = 0;
  for (int i = 0; i < n && avail > 0; ++i) {
    auto* p = static_cast<uint8_t*>(iov[i].iov_base);
    size_t len = std::min(iov[i].iov_len, avail);
    size_t at = static_cast<size_t>((head + total) % cap), first = std::min(len, cap - at);
    std::memcpy(p, data_ + at, first);
    std::memcpy(p + first, data_, len - first);
    total += len;
    avail -= len;
  }
  if (total > 0) hdr_->head.store(head + total, std::memory_order_release);
  return total;
}

size_t Ring::read(uint8_t* p, size_t len) {
  ::iovec v{p, len};
  return read(&v, 1);
}

void sweepStaleSegments() {
  DIR* d = ::opendir("/dev/shm");
  if (!d) return;
  while (dirent* e = ::readdir(d)) {
    const char* prefix = "chorus-shm.";
    if (std::strncmp(e->d_name, prefix, std::strlen(prefix)) != 0) continue;
    long pid = std::strtol(e->d_name + std::strlen(prefix), nullptr, 10);
    if (pid <= 0) continue;
    if (::kill(static_cast<pid_t>(pid), 0) != 0 && errno == ESRCH)
      ::shm_unlink((std::string("/") + e->d_name).c_str());
  }
  ::closedir(d);
}

}  // namespace chorus::transport::shm
