// One progress engine per communicator.
//
// Threads and locks: all communicator state (connections, operations, views)
// is guarded by the engine lock (mutex()). Two kinds of thread take it:
//  - a caller blocked in a Chorus call drives progress itself (driveUntil):
//    it polls for a short spin, then sleeps on the sockets' epoll set and its
//    own eventfd, so the kernel wakes exactly the thread that waits -- no
//    hand-off to another thread on the hot path (on a 2-core box with a 4 ms
//    scheduler tick a hand-off can cost a whole tick). Several callers may
//    drive at once (an application thread and the background snapshot
//    thread): a pass that moved anything kicks the others' eventfds, since
//    it may have consumed what they sleep for;
//  - the engine's own thread drives progress only while no caller does (for
//    asynchronous operations and control traffic), and parks otherwise; it
//    re-checks that under the lock before each pass.
// The lock is never held while sleeping. Lock order: engine lock, then any
// lock of the communicator's inbox; never the reverse.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>
#include <vector>

#include "src/core/clock.h"
#include "src/core/status.h"

namespace chorus {

class ProgressEngine {
 public:
  class Client {
   public:
    virtual ~Client() = default;
    // One non-blocking pass under the engine lock; readyFds lists descriptors
    // epoll reported readable or writable. Returns true if anything moved.
    // spinning: one of a blocking caller's back-to-back passes (a pass every
    // few hundred ns); time-based work may then look at the clock less often.
    // nowNs: the clock as read just before this pass (nowNs() in clock.h), or
    // 0 where none was read; never later than the pass's true start.
    virtual bool progressPass(const int* readyFds, int nReady, bool spinning, int64_t nowNs) = 0;
    // Under the lock, before a thread sleeps: update write interest.
    virtual void beforeSleep() = 0;
    // Under the lock: should the engine thread poll even though no caller
    // drives (asynchronous operations, transitions)?
    virtual bool wantsBackgroundProgress() = 0;
    // Under the lock: the next deadline that needs a pass.
    virtual Deadline nextTimer() = 0;
    // Under the lock: must every pass ask epoll which descriptors are ready?
    // False when every link is polled anyway (shared memory): a spinning
    // caller then skips that syscall, asking only every kFdCheckNs.
    virtual bool needsReadyFds() { return true; }
  };

  ProgressEngine();
  ~ProgressEngine();
  ProgressEngine(const ProgressEngine&) = delete;
  ProgressEngine& operator=(const ProgressEngine&) = delete;

  Status init(Client* client, int spinUs);
  // Tests only: the engine thread pauses this long between deciding that no
  // caller drives and taking the lock for its pass, which widens the window
  // a caller can enter through (see threadMain).
  void delayBackgroundPassesForTest(int us) { testPassDelayUs_.store(us); }
  // Spin time before sleeping, and whether to yield the CPU while spinning
  // (when more peers share this host than it has cores).
  // adaptive: after a sleep that a wake-up ended within kShortSleepNs (the
  // peers are exchanging, just not at this instant), spin at least
  // kBoostSpinNs before the next sleep. Without it two peers can settle into
  // taking turns sleeping, paying two wake-ups (~130 us here) per message.
  void setSpinPolicy(int spinUs, bool yieldWhileSpinning, bool adaptive = false);
  void startThread();
  void stopThread();

  std::mutex& mutex() { return mu_; }
  // Descriptor registration (engine lock held).
  Status addFd(int fd);
  void removeFd(int fd);
  void setWriteInterest(int fd, bool want);
  // From any thread: make every sleeping driver and the engine thread run a
  // pass.
  void wake();

  // Drive on the calling thread until done() (evaluated under the lock) is
  // true. Returns false if the deadline passed first.
  bool driveUntil(const std::function<bool()>& done, Deadline deadline);
  // One pass on the calling thread (e.g. chorusTest).
  void pollOnce();

 private:
  void threadMain();
  void testDelay();
  // epoll_wait; writes ready descriptors to out (kMaxEvents entries).
  int waitReady(int timeoutMs, int* out);
  // Sleeps until a registered descriptor is ready, ownWakeFd is written, or
  // the timeout; true if something woke it.
  bool sleepOn(int ownWakeFd, int timeoutMs);
  // Kicks the drivers asleep in sleepOn (not the engine thread).
  void wakeSleepers();
  // Wakes the engine thread if it is parked while a caller drives.
  void unpark();
  bool passLocked(int nReady, bool spinning = false, int64_t nowNs = 0);

  Client* client_ = nullptr;
  int epfd_ = -1;
  int wakeFd_ = -1;
  // Written under the lock (view changes, link checks), read by spinning
  // callers without it.
  std::atomic<int> spinNs_{50000};
  static constexpr int64_t kFdCheckNs = 20'000;
  std::atomic<bool> yieldWhileSpinning_{false};
  std::atomic<bool> adaptiveSpin_{false};
  int64_t boostUntilNs_ = 0;  // spin at least kBoostSpinNs until then
  // A spinning caller yields the CPU each round once nothing moved for this
  // long (always, when yieldWhileSpinning_).
  static constexpr int64_t kYieldAfterNs = 10'000;
  static constexpr int64_t kShortSleepNs = 1'000'000;
  static constexpr int64_t kBoostSpinNs = 1'000'000;
  static constexpr int64_t kBoostForNs = 100'000'000;
  std::mutex mu_;
  std::unordered_map<int, bool> writeInterest_;
  static constexpr int kMaxEvents = 64;
  int readyBuf_[kMaxEvents];

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> drivers_{0};
  std::atomic<int> testPassDelayUs_{0};
  std::atomic<int64_t> lastDriveEndNs_{0};
  // Passes run (under mu_; read without it by a leaving driver).
  std::atomic<uint64_t> passSeq_{0};
  // Each sleeping caller waits on the epoll set and on its own eventfd: a
  // shared one could be read by another caller's pass and the wake-up lost.
  std::mutex sleepersMu_;
  std::vector<int> sleepers_;
  // Counts wake() calls: a caller that registers as a sleeper only after a
  // wake() (its eventfd was not signalled) sees the count moved since its
  // last pass and does not sleep.
  std::atomic<uint64_t> wakeGen_{0};
  std::mutex parkMu_;
  std::condition_variable parkCv_;
};

// Whether a caller waiting for data should spin before it sleeps: only if
// some link can answer within a spin window -- shared memory (anyPolledLink)
// or a socket whose round trip is under 1 ms (0: not known yet). Over links
// that are all long (a WAN), nothing comes back sooner than a round trip,
// and spinning only takes the CPU that reductions and other processes need.
bool spinPaysOff(const std::vector<uint32_t>& linkRttUs, bool anyPolledLink);

}  // namespace chorus
