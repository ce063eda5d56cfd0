#include "tools/common/process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <sstream>

extern char** environ;

namespace chorus_tools {

namespace {
int64_t nowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

std::unique_ptr<Process> Process::spawn(const std::string& path,
                                        const std::vector<std::string>& args,
                                        const std::vector<std::string>& env) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) return nullptr;
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 1);
  posix_spawn_file_actions_adddup2(&fa, fds[1], 2);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(path.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  std::vector<std::string> envStore;
  // The given variables replace inherited ones of the same name (getenv
  // would otherwise see the first, inherited, value).
  auto nameOf = [](const std::string& kv) { return kv.substr(0, kv.find('=')); };
  for (char** e = environ; *e; ++e) {
    std::string kv(*e);
    bool overridden = false;
    for (const auto& g : env) overridden |= nameOf(g) == nameOf(kv);
    if (!overridden) envStore.push_back(std::move(kv));
  }
  for (const auto& e : env) envStore.push_back(e);
  std::vector<char*> envp;
  for (auto& e : envStore) envp.push_back(const_cast<char*>(e.c_str()));
  envp.push_back(nullptr);
  pid_t pid;
  int rc = posix_spawn(&pid, path.c_str(), &fa, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&fa);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return nullptr;
  }
  auto p = std::unique_ptr<Process>(new Process());
  p->pid_ = pid;
  p->fd_ = fds[0];
  fcntl(p->fd_, F_SETFL, O_NONBLOCK);
  fcntl(p->fd_, F_SETPIPE_SZ, 1 << 20);
  return p;
}

Process::~Process() {
  if (!exited_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    waitpid(pid_, &status_, 0);
  }
  if (fd_ >= 0) close(fd_);
}

void Process::pump(int timeoutMs) {
  if (fd_ < 0) return;
  pollfd pfd{fd_, POLLIN, 0};
  if (poll(&pfd, 1, timeoutMs) <= 0) return;
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd_, buf, sizeof(buf));
    if (n > 0) {
      out_.append(buf, n);
      continue;
    }
    if (n == 0) {  // EOF: every writer closed
      close(fd_);
      fd_ = -1;
    }
    break;
  }
}

std::vector<std::string> Process::newLines() {
  std::vector<std::string> out;
  size_t nl;
  while ((nl = out_.find('\n', consumed_)) != std::string::npos) {
    out.push_back(out_.substr(consumed_, nl - consumed_));
    consumed_ = nl + 1;
  }
  return out;
}

std::vector<std::string> Process::lines(const std::string& prefix) const {
  std::vector<std::string> out;
  std::istringstream in(out_);
  std::string line;
  while (std::getline(in, line))
    if (line.compare(0, prefix.size(), prefix) == 0) out.push_back(line);
  return out;
}

bool Process::waitForLine(const std::string& prefix, int timeoutMs, size_t count) {
  int64_t end = nowMs() + timeoutMs;
  for (;;) {
    if (lines(prefix).size() >= count) return true;
    int64_t left = end - nowMs();
    if (left <= 0) return false;
    if (fd_ < 0) {
      if (wait(static_cast<int>(std::min<int64_t>(left, 50)))) return lines(prefix).size() >= count;
    } else {
      pump(static_cast<int>(std::min<int64_t>(left, 50)));
    }
  }
}

bool Process::wait(int timeoutMs) {
  int64_t end = nowMs() + timeoutMs;
  while (!exited_) {
    pid_t r = waitpid(pid_, &status_, WNOHANG);
    if (r == pid_) {
      exited_ = true;
      break;
    }
    pump(0);
    if (nowMs() >= end) return false;
    pump(5);
  }
  // Drain what is left.
  while (fd_ >= 0) pump(10);
  return true;
}

int Process::exitCode() const {
  return WIFEXITED(status_) ? WEXITSTATUS(status_) : -1;
}
int Process::termSignal() const {
  return WIFSIGNALED(status_) ? WTERMSIG(status_) : 0;
}
void Process::signal(int sig) {
  if (!exited_) kill(pid_, sig);
}

std::map<std::string, std::string> fields(const std::string& line) {
  std::map<std::string, std::string> f;
  std::istringstream in(line);
  std::string tok;
  while (in >> tok) {
    auto eq = tok.find('=');
    if (eq != std::string::npos) f[tok.substr(0, eq)] = tok.substr(eq + 1);
  }
  return f;
}

}  // namespace chorus_tools
