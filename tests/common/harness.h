// Multi-process test support: real worker processes (chorus_test_worker),
// their output, signals, and an in-process coordinator. Every wait is
// bounded; a Proc still running when destroyed is killed.
#pragma once

#include <sys/types.h>

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "chorus.h"
#include "tools/common/process.h"

namespace chorus_test {

std::string workerPath();

using Proc = chorus_tools::Process;
using chorus_tools::fields;

// Coordinator running inside the test process (C API).
class TestCoordinator {
 public:
  explicit TestCoordinator(const std::string& secret = "test-secret", int failureTimeoutMs = 0,
                           const std::string& bind = "127.0.0.1:0", int recoveryGraceMs = -1);
  // Secret "test-secret" on 127.0.0.1, then `adjust` sets what it wants (TLS...).
  explicit TestCoordinator(const std::function<void(chorusCoordinatorParams_t*)>& adjust);
  ~TestCoordinator();
  const std::string& address() const { return address_; }
  bool ok() const { return handle_ != nullptr; }
  void stop();

 private:
  void start(const chorusCoordinatorParams_t& p);
  chorusCoordinator_t handle_ = nullptr;
  std::string address_;
};

// N workers of one group.
struct Workers {
  std::vector<std::unique_ptr<Proc>> procs;
  static Workers launch(int n, const std::string& coordinator, const std::string& group,
                        const std::vector<std::string>& args,
                        const std::string& secret = "test-secret",
                        const std::vector<std::string>& env = {});
  // Wait for all to exit; false on timeout (survivors are then killed).
  bool waitAll(int timeoutMs);
  std::string dump() const;  // every worker's output, for failure messages
};

}  // namespace chorus_test
