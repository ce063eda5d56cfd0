#include "tools/common/launch.h"

#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <random>
#include <thread>

#include "chorus.h"

extern char** environ;

namespace chorus_tools {

bool EmbeddedCoordinator::start(const std::string& secret) {
  chorusCoordinatorParams_t p;
  chorusCoordinatorParamsInit(&p);
  p.bindAddress = "127.0.0.1:0";
  p.secret = secret.c_str();
  chorusCoordinator_t c = nullptr;
  if (chorusCoordinatorStart(&p, &c) != chorusSuccess) {
    std::fprintf(stderr, "cannot start the coordinator: %s\n", chorusGetLastError(nullptr));
    return false;
  }
  char buf[128];
  chorusCoordinatorGetAddress(c, buf, sizeof(buf));
  address_ = buf;
  handle_ = c;
  return true;
}

EmbeddedCoordinator::~EmbeddedCoordinator() {
  if (handle_) chorusCoordinatorStop(static_cast<chorusCoordinator_t>(handle_));
}

std::string selfPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  buf[n] = '\0';
  return buf;
}

std::string randomSecret() {
  std::random_device rd;
  char buf[33];
  std::snprintf(buf, sizeof(buf), "%08x%08x%08x%08x", rd(), rd(), rd(), rd());
  return buf;
}

pid_t spawnSelf(const std::string& self, const std::vector<std::string>& args) {
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(self.c_str()));
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  if (posix_spawn(&pid, self.c_str(), nullptr, nullptr, argv.data(), environ) != 0) return -1;
  return pid;
}

int waitChildren(std::vector<pid_t>& pids, int timeoutSec) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeoutSec);
  int rc = 0;
  size_t live = pids.size();
  while (live > 0) {
    for (pid_t& p : pids) {
      if (p <= 0) continue;
      int status = 0;
      pid_t r = waitpid(p, &status, WNOHANG);
      if (r == p) {
        p = -1;
        --live;
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
          rc = 1;
          for (pid_t q : pids)
            if (q > 0) kill(q, SIGTERM);
        }
      }
    }
    if (live > 0 && std::chrono::steady_clock::now() > deadline) {
      std::fprintf(stderr, "timed out after %d s; killing the peers\n", timeoutSec);
      for (pid_t q : pids)
        if (q > 0) kill(q, SIGKILL);
      rc = 1;
      deadline = std::chrono::steady_clock::now() + std::chrono::hours(1);
    }
    if (live > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return rc;
}

}  // namespace chorus_tools
