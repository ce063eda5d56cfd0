// Helpers for tools that run several local peers: an embedded coordinator
// (inside the launching process) and child processes of the same binary.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace chorus_tools {

// A coordinator started through the C API in this process.
class EmbeddedCoordinator {
 public:
  // Returns false (and prints why) on failure.
  bool start(const std::string& secret);
  ~EmbeddedCoordinator();
  const std::string& address() const { return address_; }

 private:
  void* handle_ = nullptr;
  std::string address_;
};

// Spawn `self` with args; returns the child's pid or -1.
pid_t spawnSelf(const std::string& self, const std::vector<std::string>& args);
// Wait for all children; kills them all if one fails or the timeout passes.
// Returns 0 if every child exited 0.
int waitChildren(std::vector<pid_t>& pids, int timeoutSec);
// Path of the running executable.
std::string selfPath();
// A random run secret for local runs.
std::string randomSecret();

}  // namespace chorus_tools
