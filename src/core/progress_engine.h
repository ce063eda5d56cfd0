// One progress engine per communicator.
//
// Threads and locks: all communicator state (connections, operations, views)
// is guarded by the engine lock (mutex()). Two kinds of thread take it:
//  - a caller blocked in a Chorus call drives progress itself (driveUntil):
//    it polls for a short spin, then sleeps in epoll_wait on the sockets, so
//    the kernel wakes exactly the thread that waits -- no hand-off to another
//    thread on the hot path (on a 2-core box with a 4 ms scheduler tick a
//    hand-off can cost a whole tick);
//  - the engine's own thread drives progress only while no caller does (for
//    asynchronous operations and control traffic), and parks otherwise.
// The lock is never held while sleeping. Lock order: engine lock, then any
// lock of the communicator's inbox; never the reverse.
#pragma once

#include <atomic>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <thread>
#include <unordered_map>

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
    virtual bool progressPass(const int* readyFds, int nReady) = 0;
    // Under the lock, before a thread sleeps: update write interest.
    virtual void beforeSleep() = 0;
    // Under the lock: should the engine thread poll even though no caller
    // drives (asynchronous operations, transitions)?
    virtual bool wantsBackgroundProgress() = 0;
    // Under the lock: the next deadline that needs a pass.
    virtual Deadline nextTimer() = 0;
  };

  ProgressEngine();
  ~ProgressEngine();
  ProgressEngine(const ProgressEngine&) = delete;
  ProgressEngine& operator=(const ProgressEngine&) = delete;

  Status init(Client* client, int spinUs);
  // Spin time before sleeping, and whether to yield the CPU while spinning
  // (when more peers share this host than it has cores).
  void setSpinPolicy(int spinUs, bool yieldWhileSpinning);
  void startThread();
  void stopThread();

  std::mutex& mutex() { return mu_; }
  // Descriptor registration (engine lock held).
  Status addFd(int fd);
  void removeFd(int fd);
  void setWriteInterest(int fd, bool want);
  // From any thread: make a sleeping driver or the engine thread run a pass.
  void wake();

  // Drive on the calling thread until done() (evaluated under the lock) is
  // true. Returns false if the deadline passed first.
  bool driveUntil(const std::function<bool()>& done, Deadline deadline);
  // One pass on the calling thread (e.g. chorusTest).
  void pollOnce();

 private:
  void threadMain();
  // epoll_wait; writes ready descriptors to out (kMaxEvents entries).
  int waitReady(int timeoutMs, int* out);
  bool passLocked(int nReady);

  Client* client_ = nullptr;
  int epfd_ = -1;
  int wakeFd_ = -1;
  int spinNs_ = 50000;
  bool yieldWhileSpinning_ = false;
  std::mutex mu_;
  std::unordered_map<int, bool> writeInterest_;
  static constexpr int kMaxEvents = 64;
  int readyBuf_[kMaxEvents];

  std::thread thread_;
  std::atomic<bool> stop_{false};
  std::atomic<int> drivers_{0};
  std::atomic<int64_t> lastDriveEndNs_{0};
  std::mutex parkMu_;
  std::condition_variable parkCv_;
};

}  // namespace chorus
