#include "src/core/progress_engine.h"

#include <poll.h>
#include <sched.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
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
  // The engine thread's wake-up; not in the epoll set (see sleepers_).
  wakeFd_ = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (wakeFd_ < 0) return systemError("eventfd", errno);
  return Status::ok();
}

void ProgressEngine::setSpinPolicy(int spinUs, bool yieldWhileSpinning, bool adaptive) {
  spinNs_.store(spinUs * 1000, std::memory_order_relaxed);
  yieldWhileSpinning_.store(yieldWhileSpinning, std::memory_order_relaxed);
  adaptiveSpin_.store(adaptive, std::memory_order_relaxed);
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

namespace {
void signal(int fd) {
  uint64_t one = 1;
  ssize_t r = ::write(fd, &one, sizeof(one));
  (void)r;
}
void drain(int fd) {
  uint64_t v;
  ssize_t r = ::read(fd, &v, sizeof(v));
  (void)r;
}

// One eventfd per thread that ever sleeps in driveUntil, closed with it.
struct ThreadWakeFd {
  int fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  ~ThreadWakeFd() {
    if (fd >= 0) ::close(fd);
  }
};
thread_local ThreadWakeFd tlsWake;
}  // namespace

void ProgressEngine::wake() {
  wakeGen_.fetch_add(1);
  signal(wakeFd_);
  wakeSleepers();
  unpark();
}

void ProgressEngine::unpark() {
  // Under parkMu_: the engine thread decides to park under it too, after
  // reading wakeGen_, so it either sees the count moved or is already
  // waiting when this notifies.
  { std::lock_guard<std::mutex> lk(parkMu_); }
  parkCv_.notify_one();
}

void ProgressEngine::wakeSleepers() {
  std::lock_guard<std::mutex> lk(sleepersMu_);
  for (int fd : sleepers_) signal(fd);
}

bool ProgressEngine::sleepOn(int ownWakeFd, int timeoutMs) {
  pollfd p[2] = {{epfd_, POLLIN, 0}, {ownWakeFd, POLLIN, 0}};
  int n = ::poll(p, 2, timeoutMs);
  if (n > 0 && (p[1].revents & POLLIN)) drain(ownWakeFd);
  return n > 0;
}

int ProgressEngine::waitReady(int timeoutMs, int* out) {
  epoll_event evs[kMaxEvents];
  int n = ::epoll_wait(epfd_, evs, kMaxEvents, timeoutMs);
  if (n <= 0) return 0;
  for (int i = 0; i < n; ++i) out[i] = evs[i].data.fd;
  return n;
}

bool ProgressEngine::passLocked(int nReady, bool spinning, int64_t nowNs) {
  passSeq_.store(passSeq_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
  return client_->progressPass(readyBuf_, nReady, spinning, nowNs);
}

void ProgressEngine::pollOnce() {
  std::lock_guard<std::mutex> lk(mu_);
  int n = waitReady(0, readyBuf_);
  if (passLocked(n) && drivers_.load() > 0) wakeSleepers();  // a sleeping caller may be done
}

bool ProgressEngine::driveUntil(const std::function<bool()>& done, Deadline deadline) {
  drivers_.fetch_add(1);
  // Polled links (shared memory) need epoll only every kFdCheckNs; asking
  // at the start of every call cost a system call (~1.2 us on these VMs)
  // per small operation. Links that need it ask on every pass anyway.
  // The clock is first read after the first pass, not before it: that pass
  // sends a small call's data, which every peer waits for, and a read costs
  // ~28 ns here. now 0: not read yet (the first pass looks at no timer).
  int64_t now = 0, lastWork = 0, lastFdCheck = 0;
  bool ok = true;
  // Whether the engine thread has work once we leave, as our last look under
  // the lock saw it: taking the lock once more for it was ~2% of a small
  // call. Good unless another caller ran passes since (passSeq_ moved); work
  // other threads add otherwise comes with its own wake().
  bool pendingAtExit = false;
  uint64_t exitSeq = 0;
  auto noteExit = [&] {
    pendingAtExit = client_->wantsBackgroundProgress();
    exitSeq = passSeq_.load(std::memory_order_relaxed);
  };
  // This pass follows the last one at once (no sleep, no yield between):
  // passes are then a few hundred ns apart.
  bool backToBack = false;
  for (;;) {
    bool worked;
    const uint64_t gen = wakeGen_.load();
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (done()) {
        noteExit();
        break;
      }
      int n = 0;
      if (client_->needsReadyFds() || (now != 0 && now - lastFdCheck >= kFdCheckNs)) {
        n = waitReady(0, readyBuf_);
        lastFdCheck = now;
      }
      worked = passLocked(n, backToBack, now);
      if (done()) {
        noteExit();
        break;
      }
      // Another caller driving at the same time may be asleep waiting for
      // what this pass just finished.
      if (worked && drivers_.load() > 1) wakeSleepers();
    }
    if (deadline.expired()) {
      std::lock_guard<std::mutex> lk(mu_);
      ok = done();
      noteExit();
      break;
    }
    if (now == 0) lastWork = lastFdCheck = nowNs();  // the call's start, near enough
    now = nowNs();
    backToBack = true;
    if (worked) {
      lastWork = now;
      continue;
    }
    int64_t spin = spinNs_.load(std::memory_order_relaxed);
    if (adaptiveSpin_.load(std::memory_order_relaxed) && now < boostUntilNs_ && spin < kBoostSpinNs)
      spin = kBoostSpinNs;
    if (now - lastWork < spin) {
      // Past the first few microseconds, yield each round even with a core
      // per peer: a peer we wait for that was woken onto our core (the
      // scheduler places a wakee beside its waker) runs only when we give
      // way; without it the two took turns in 1 ms slices for tens of
      // milliseconds until the load balancer split them. With the core to
      // ourselves the yield returns at once.
      if (now - lastWork >= kYieldAfterNs || yieldWhileSpinning_.load(std::memory_order_relaxed)) {
        sched_yield();
        backToBack = false;  // another process may have run for a while
      }
      continue;
    }
    backToBack = false;
    // Nothing moved for a while: sleep until a socket or the wake fd fires.
    int timeoutMs;
    const int ownWake = tlsWake.fd;
    {
      std::lock_guard<std::mutex> lk(mu_);
      if (done()) {
        noteExit();
        break;
      }
      client_->beforeSleep();
      Deadline next = Deadline::earliest(deadline, client_->nextTimer());
      timeoutMs = next.remainingMs(100);
      // Registered under the engine lock: a pass after this one kicks us, and
      // so does a wake() from now on; one since our last pass: go again.
      std::lock_guard<std::mutex> sl(sleepersMu_);
      sleepers_.push_back(ownWake);
      if (wakeGen_.load() != gen) timeoutMs = 0;
    }
    int64_t sleptFrom = nowNs();
    int woke = sleepOn(ownWake, timeoutMs) ? 1 : 0;
    {
      std::lock_guard<std::mutex> sl(sleepersMu_);
      sleepers_.erase(std::find(sleepers_.begin(), sleepers_.end(), ownWake));
    }
    lastWork = now = nowNs();
    if (woke > 0 && now - sleptFrom < kShortSleepNs) boostUntilNs_ = now + kBoostForNs;
    lastFdCheck = 0;  // what woke us is read by the next pass
  }
  // The stand-off is 2 ms: the clock as read before the last pass will do.
  lastDriveEndNs_.store(now != 0 ? now : nowNs());
  if (drivers_.fetch_sub(1) == 1) {
    // The engine thread parks while a caller drives; the last driver to
    // leave hands it what is still pending (asynchronous operations, queued
    // sends, a view change). A blocking loop leaves nothing: no system call.
    bool pending = pendingAtExit;
    if (passSeq_.load(std::memory_order_relaxed) != exitSeq) {
      std::lock_guard<std::mutex> lk(mu_);
      pending = client_->wantsBackgroundProgress();
    }
    if (pending) {
      wakeGen_.fetch_add(1);
      unpark();
    }
  }
  return ok;
}

void ProgressEngine::testDelay() {
  if (int us = testPassDelayUs_.load(std::memory_order_relaxed))
    std::this_thread::sleep_for(std::chrono::microseconds(us));
}

void ProgressEngine::threadMain() {
  // After a blocking call returns, stay out of the way for a moment: the
  // caller is likely to call again, and competing with it for the sockets
  // would cost both threads wake-ups.
  constexpr int64_t kStandOffNs = 2'000'000;
  while (!stop_.load()) {
    bool wantBg;
    int timeoutMs;
    const uint64_t gen = wakeGen_.load();
    {
      std::lock_guard<std::mutex> lk(mu_);
      wantBg = client_->wantsBackgroundProgress();
      client_->beforeSleep();
      timeoutMs = client_->nextTimer().remainingMs(50);
    }
    {
      // Park while a caller drives (it progresses everything) or has just
      // returned. Its leaving with work pending, and wake(), unpark us; the
      // timeout is only a safety net. Looking every 2 ms instead preempted
      // a spinning caller of another process on these 2 cores 500 times a
      // second, and each time its peer waited too.
      std::unique_lock<std::mutex> lk(parkMu_);
      bool callerActive =
          drivers_.load() > 0 || (!wantBg && nowNs() - lastDriveEndNs_.load() < kStandOffNs);
      if (callerActive) {
        if (wakeGen_.load() == gen) parkCv_.wait_for(lk, std::chrono::milliseconds(50));
        continue;
      }
    }
    if (!wantBg) {
      // Nothing asynchronous is pending: wait for a wake-up (control event,
      // new operation) only. Data for operations not started here stays in
      // the socket until someone calls them.
      pollfd pfd{wakeFd_, POLLIN, 0};
      if (::poll(&pfd, 1, timeoutMs) > 0) drain(wakeFd_);
      if (stop_.load()) break;
      if (drivers_.load() > 0) continue;
      testDelay();
      std::lock_guard<std::mutex> lk(mu_);
      // Checked again under the lock: a pass here must not finish a caller's
      // operation between that caller's last look and its sleep.
      if (drivers_.load() == 0) passLocked(0);
      continue;
    }
    sleepOn(wakeFd_, timeoutMs);
    if (stop_.load()) break;
    if (drivers_.load() > 0) continue;
    testDelay();
    std::lock_guard<std::mutex> lk(mu_);
    if (drivers_.load() > 0) continue;  // as above
    // Poll again under the lock: a driver may have consumed the events.
    int n = waitReady(0, readyBuf_);
    passLocked(n);
  }
}

bool spinPaysOff(const std::vector<uint32_t>& linkRttUs, bool anyPolledLink) {
  if (anyPolledLink || linkRttUs.empty()) return true;
  for (uint32_t rtt : linkRttUs)
    if (rtt < 1000) return true;
  return false;
}

}  // namespace chorus
