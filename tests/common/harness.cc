#include "tests/common/harness.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <sstream>
#include <thread>

extern char** environ;

namespace chorus_test {

namespace {
int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::string workerPath() {
  return CHORUS_TEST_WORKER;
}

TestCoordinator::TestCoordinator(const std::string& secret, int failureTimeoutMs,
                                 const std::string& bind, int recoveryGraceMs) {
  chorusInit();
  chorusCoordinatorParams_t p;
  chorusCoordinatorParamsInit(&p);
  p.bindAddress = bind.c_str();
  p.secret = secret.c_str();
  if (failureTimeoutMs > 0) p.failureTimeoutMs = failureTimeoutMs;
  if (recoveryGraceMs >= 0) p.recoveryGraceMs = recoveryGraceMs;
  start(p);
}

TestCoordinator::TestCoordinator(const std::function<void(chorusCoordinatorParams_t*)>& adjust) {
  chorusInit();
  chorusCoordinatorParams_t p;
  chorusCoordinatorParamsInit(&p);
  p.bindAddress = "127.0.0.1:0";
  p.secret = "test-secret";
  adjust(&p);
  start(p);
}

void TestCoordinator::start(const chorusCoordinatorParams_t& p) {
  if (chorusCoordinatorStart(&p, &handle_) != chorusSuccess) {
    handle_ = nullptr;
    return;
  }
  char buf[128];
  chorusCoordinatorGetAddress(handle_, buf, sizeof(buf));
  address_ = buf;
}

TestCoordinator::~TestCoordinator() {
  stop();
  chorusFinalize();
}

void TestCoordinator::stop() {
  if (handle_) chorusCoordinatorStop(handle_);
  handle_ = nullptr;
}

Workers Workers::launch(int n, const std::string& coordinator, const std::string& group,
                        const std::vector<std::string>& args, const std::string& secret,
                        const std::vector<std::string>& env) {
  Workers w;
  for (int i = 0; i < n; ++i) {
    std::vector<std::string> a = {"--coordinator", coordinator,       "--group",  group,
                                  "--expected",    std::to_string(n), "--secret", secret};
    a.insert(a.end(), args.begin(), args.end());
    w.procs.push_back(Proc::spawn(workerPath(), a, env));
  }
  return w;
}

bool Workers::waitAll(int timeoutMs) {
  // Poll every worker in turn: one that is not read from could block on a
  // full pipe and stall the whole collective.
  int64_t end = nowMs() + timeoutMs;
  for (;;) {
    bool all = true;
    for (auto& p : procs) {
      if (!p) return false;
      if (!p->exited()) {
        p->wait(0);
        all = all && p->exited();
      }
    }
    if (all) return true;
    if (nowMs() >= end) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  for (auto& p : procs)
    if (p) {
      p->signal(SIGKILL);
      p->wait(2000);
    }
  return false;
}

std::string Workers::dump() const {
  std::string s;
  for (size_t i = 0; i < procs.size(); ++i) {
    s += "----- worker " + std::to_string(i) + " -----\n";
    if (!procs[i]) continue;
    procs[i]->pump(0);  // what it wrote while the test waited on another
    // The start (READY, the early operations) and the end (where it stopped).
    const std::string& out = procs[i]->output();
    if (out.size() <= 20000)
      s += out;
    else
      s += out.substr(0, 2000) + "\n[...]\n" + out.substr(out.size() - 18000);
  }
  return s;
}

}  // namespace chorus_test
