// Multi-process test support: real worker processes (chorus_test_worker),
// their output, signals, and an in-process coordinator. Every wait is
// bounded; a Proc still running when destroyed is killed.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "chorus.h"

namespace chorus_test {

std::string workerPath();

class Proc {
 public:
  static std::unique_ptr<Proc> spawn(const std::string& path, const std::vector<std::string>& args,
                                     const std::vector<std::string>& env = {});
  ~Proc();
  pid_t pid() const { return pid_; }
  // Read whatever output is available, waiting up to timeoutMs for some.
  void pump(int timeoutMs);
  const std::string& output() const { return out_; }
  // Complete lines starting with prefix.
  std::vector<std::string> lines(const std::string& prefix) const;
  // Wait until a line starting with prefix appears (true) or the timeout.
  bool waitForLine(const std::string& prefix, int timeoutMs, size_t count = 1);
  // Wait for exit (true) or the timeout.
  bool wait(int timeoutMs);
  bool exited() const { return exited_; }
  int exitCode() const;  // -1 if killed by a signal
  int termSignal() const;
  void signal(int sig);

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
  bool exited_ = false;
  int status_ = 0;
};

// key=value fields of a worker line.
std::map<std::string, std::string> fields(const std::string& line);

// Coordinator running inside the test process (C API).
class TestCoordinator {
 public:
  explicit TestCoordinator(const std::string& secret = "test-secret", int failureTimeoutMs = 0,
                           const std::string& bind = "127.0.0.1:0", int recoveryGraceMs = -1);
  ~TestCoordinator();
  const std::string& address() const { return address_; }
  bool ok() const { return handle_ != nullptr; }
  void stop();

 private:
  chorusCoordinator_t handle_ = nullptr;
  std::string address_;
};

// N workers of one group.
struct Workers {
  std::vector<std::unique_ptr<Proc>> procs;
  static Workers launch(int n, const std::string& coordinator, const std::string& group,
                        const std::vector<std::string>& args,
                        const std::string& secret = "test-secret");
  // Wait for all to exit; false on timeout (survivors are then killed).
  bool waitAll(int timeoutMs);
  std::string dump() const;  // every worker's output, for failure messages
};

}  // namespace chorus_test
