// Child processes with captured output: spawn, read lines, signal, wait.
// Used by chorus-stress and by the multi-process tests. Every wait is
// bounded; a Process still running when destroyed is killed.
#pragma once

#include <sys/types.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace chorus_tools {

class Process {
 public:
  // stdout and stderr of the child go to one pipe read by pump().
  static std::unique_ptr<Process> spawn(const std::string& path,
                                        const std::vector<std::string>& args,
                                        const std::vector<std::string>& env = {});
  ~Process();
  pid_t pid() const { return pid_; }
  // Read whatever output is available, waiting up to timeoutMs for some.
  void pump(int timeoutMs);
  const std::string& output() const { return out_; }
  // Complete lines starting with prefix.
  std::vector<std::string> lines(const std::string& prefix) const;
  // Complete lines not returned by an earlier call (for streaming readers).
  std::vector<std::string> newLines();
  // Wait until `count` lines starting with prefix appeared (true) or the timeout.
  bool waitForLine(const std::string& prefix, int timeoutMs, size_t count = 1);
  // Wait for exit (true) or the timeout; 0 polls once.
  bool wait(int timeoutMs);
  bool exited() const { return exited_; }
  int exitCode() const;  // -1 if killed by a signal
  int termSignal() const;
  void signal(int sig);

 private:
  pid_t pid_ = -1;
  int fd_ = -1;
  std::string out_;
  size_t consumed_ = 0;
  bool exited_ = false;
  int status_ = 0;
};

// key=value fields of a line.
std::map<std::string, std::string> fields(const std::string& line);

}  // namespace chorus_tools
