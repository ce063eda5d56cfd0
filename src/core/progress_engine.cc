#include "src/core/progress_engine.h"

#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>

#include "src/core/log.h"

namespace chorus {

ProgressEngine::ProgressEngine() = default;

ProgressEngine::~ProgressEngine() {
  stopThread();
  if (epfd_ >= 0) ::close(epfd_);
  if (wakeFd_ >= 0) ::close(wakeFd_);
}

Status ProgressEngine::init(Client* client, int spinUs) {
  client_ = client;
  spinNs_ = spinUs * 1000;
  epfd_ = ::epoll_create1(EPOLL_CLOEXEC);
  if (epfd_ < 0) return systemError("epoll_create1", errno);
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) return systemError("eventfd", errno);
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = wakeFd_;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, wakeFd_, &ev) != 0) return systemError("epoll_ctl", errno);
  return Status::ok();
}

void ProgressEngine::setSpinPolicy(int spinUs, bool yieldWhileSpinning) {
  spinNs_ = spinUs * 1000;
  yieldWhileSpinning_ = yieldWhileSpinning;
}

void ProgressEngine::startThread() {
  if (thread_.joinable()) return;
  stop_ = false;
  thread_ = std::thread([this] { threadMain(); });
}

void ProgressEngine::stopThread() {
  if (!thread_.joinable()) return;
  stop_ = true;
  wake();
  { std::lock_guard<std::mutex> lk(parkMu_); }
  parkCv_.notify_all();
  thread_.join();
}

Status ProgressEngine::addFd(int fd) {
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.fd = fd;
  if (::epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) != 0) return systemError("epoll_ctl add", errno);
  writeInterest_[fd] = false;
  return Status::ok();
}

void ProgressEngine::removeFd(int fd) {
  ::epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr);
  writeInterest_.erase(fd);
}

void ProgressEngine::setWriteInterest(int fd, bool want) {
  auto it = writeInterest_.find(fd);
  if (it == writeInterest_.end() || it->second == want) return;
  epoll_event ev{};
  ev.events = EPOLLIN | (want ? EPOLLOUT : 0u);
  ev.data.fd = fd;
  if (::epoll_ctl(epfd_, EPOLL_CTL_MOD, fd, &ev) == 0) it->second = want;
}

void ProgressEngine::wake() {
  uint64_t one = 1;
  ssize_t r = ::write(wakeFd_, &one, sizeof(one));
  (void)r;
  parkCv_.notify_one();
}

int ProgressEngine::waitReady(int timeoutMs, int* out) {
  epoll_event evs[kMaxEvents];
  int n = ::epoll_wait(epfd_, evs, kMaxEvents, timeoutMs);
  if (n <= 0) return 0;
  int k = 0;
  for (int i = 0; i < n; ++i) {
    if (evs[i].data.fd == wakeFd_) {
      uint64_t v;
      ssize_t r = ::read(wakeFd_, &v, sizeof(v));
      (void)r;
      // Report the wake descriptor too: the client drains its inbox.
    }
    out[k++] = evs[i].data.fd;
  }
  return k;
}

bool ProgressEngine::passLocked(int nReady) {
  return client_->progressPass(readyBuf_, nReady);
}

void ProgressEngine::pollOnce() {
  std::lock_guard<std::mutex> lk(mu_);
  int n = waitReady(0, readyBuf_);
  passLocked(n);
}

bool ProgressEngine::driveUntil(const std::function<bool()>& done, Deadline deadline) {
  drivers_.fetch_add(1);
  int64_t lastWork = nowNs();
  bool ok = true;
  for (;;) {
    bool worked;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (done()) break;
      int n = waitReady(0, readyBuf_);
      worked = passLocked(n);
      if (done()) break;
    }
    if (deadline.expired()) {
      std::lock_guard<std::mutex> lk(mu_);
      ok = done();
      break;
    }
    int64_t now = nowNs();
    if (worked) {
      lastWork = now;
      continue;
    }
    if (now - lastWork < spinNs_) {
      if (yieldWhileSpinning_) sched_yield();
      continue;
    }
    // Nothing moved for a while: sleep until a socket or the wake fd fires.
    int timeoutMs;
    {
      std::lock_guard<std::mutex> lk(mu_);
      client_->beforeSleep();
      Deadline next = Deadline::earliest(deadline, client_->nextTimer());
      timeoutMs = next.remainingMs(100);
    }
    int scratch[kMaxEvents];
    waitReady(timeoutMs, scratch);
    lastWork = nowNs();
  }
  lastDriveEndNs_.store(nowNs());
  drivers_.fetch_sub(1);
  return ok;
}

void ProgressEngine::threadMain() {
  // After a blocking call returns, stay out of the way for a moment: the
  // caller is likely to call again, and competing with it for the sockets
  // would cost both threads wake-ups.
  constexpr int64_t kStandOffNs = 2'000'000;
  while (!stop_.load()) {
    bool wantBg;
    int timeoutMs;
    {
      std::lock_guard<std::mutex> lk(mu_);
      wantBg = client_->wantsBackgroundProgress();
      client_->beforeSleep();
      timeoutMs = client_->nextTimer().remainingMs(50);
    }
    bool callerActive =
        drivers_.load() > 0 || (!wantBg && nowNs() - lastDriveEndNs_.load() < kStandOffNs);
    if (callerActive) {
      std::unique_lock<std::mutex> lk(parkMu_);
      parkCv_.wait_for(lk, std::chrono::milliseconds(wantBg ? 2 : 50));
      continue;
    }
    if (!wantBg) {
      // Nothing asynchronous is pending: wait for a wake-up (control event,
      // new operation) only. Data for operations not started here stays in
      // the socket until someone calls them.
      pollfd pfd{wakeFd_, POLLIN, 0};
      if (::poll(&pfd, 1, timeoutMs) > 0) {
        uint64_t v;
        ssize_t r = ::read(wakeFd_, &v, sizeof(v));
        (void)r;
      }
      if (stop_.load()) break;
      if (drivers_.load() > 0) continue;
      std::lock_guard<std::mutex> lk(mu_);
      passLocked(0);
      continue;
    }
    int scratch[kMaxEvents];
    waitReady(timeoutMs, scratch);
    if (stop_.load()) break;
    if (drivers_.load() > 0) continue;
    std::lock_guard<std::mutex> lk(mu_);
    // Poll again under the lock: a driver may have consumed the events.
    int n = waitReady(0, readyBuf_);
    passLocked(n);
  }
}

}  // namespace chorus
