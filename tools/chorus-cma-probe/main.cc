// chorus-cma-probe: is a single copy between processes through Cross Memory
// Attach (process_vm_readv, what Open MPI's shared-memory transport uses for
// large messages) faster on this machine than the two copies of a
// shared-memory ring? It times process_vm_readv from a forked child's buffer
// against memcpy of the same size, hot in cache, per size.
//
//   build/tools/chorus-cma-probe            # 4 KiB .. 16 MiB
//
// A ring moves each byte twice (into the ring, out of it), so CMA pays off
// only where it is more than half as fast as memcpy.
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <vector>

namespace {

double secondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main() {
  const size_t maxBytes = 16u << 20;
  std::vector<char> src(maxBytes, 7), dst(maxBytes, 0);
  int hold[2];
  if (::pipe(hold) != 0) return 1;
  pid_t child = ::fork();
  if (child < 0) return 1;
  if (child == 0) {  // keeps its copy of src mapped until the parent is done
    char b;
    ssize_t r = ::read(hold[0], &b, 1);
    (void)r;
    ::_exit(0);
  }
  std::printf("%10s %14s %12s %14s %12s %8s\n", "bytes", "cma us", "cma GB/s", "memcpy us",
              "memcpy GB/s", "ratio");
  int rc = 0;
  for (size_t bytes : {size_t{4} << 10, size_t{64} << 10, size_t{1} << 20, maxBytes}) {
    const int reps = static_cast<int>(std::min<size_t>(20000, (size_t{256} << 20) / bytes));
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      iovec local{dst.data(), bytes}, remote{src.data(), bytes};
      ssize_t got = ::process_vm_readv(child, &local, 1, &remote, 1, 0);
      if (got != static_cast<ssize_t>(bytes)) {
        std::fprintf(stderr, "process_vm_readv: %s (needs ptrace rights over the peer)\n",
                     got < 0 ? std::strerror(errno) : "short read");
        rc = 1;
        break;
      }
    }
    if (rc) break;
    const double cma = secondsSince(t0) / reps;
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      std::memcpy(dst.data(), src.data(), bytes);
      asm volatile("" : : "r"(dst.data()) : "memory");  // keep every copy
    }
    const double copy = secondsSince(t0) / reps;
    std::printf("%10zu %14.2f %12.2f %14.2f %12.2f %8.2f\n", bytes, cma * 1e6, bytes / cma / 1e9,
                copy * 1e6, bytes / copy / 1e9, copy / cma);
  }
  ssize_t w = ::write(hold[1], "x", 1);
  (void)w;
  ::waitpid(child, nullptr, 0);
  return rc;
}
