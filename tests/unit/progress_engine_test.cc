// The progress engine's hand-over between a blocked caller and the engine's
// own thread: a caller asleep in epoll must wake for the event it waits for,
// whichever of the two threads epoll chose to wake, and the engine thread
// must never finish a caller's wait behind its back.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <random>
#include <thread>

#include "src/core/progress_engine.h"

namespace chorus {
namespace {

// Consumes bytes from a pipe; a caller waits until a given count arrived.
class PipeClient final : public ProgressEngine::Client {
 public:
  explicit PipeClient(int readFd) : fd_(readFd) {}
  bool progressPass(const int* readyFds, int nReady, bool, int64_t) override {
    if (onPass) onPass();
    bool worked = false;
    for (int i = 0; i < nReady; ++i) {
      if (readyFds[i] != fd_) continue;
      char buf[64];
      ssize_t r;
      while ((r = ::read(fd_, buf, sizeof(buf))) > 0) {
        consumed.fetch_add(static_cast<int>(r));
        worked = true;
      }
    }
    return worked;
  }
  void beforeSleep() override {}
  // Always "busy": the engine thread sleeps on the same epoll set as callers.
  bool wantsBackgroundProgress() override { return true; }
  Deadline nextTimer() override { return Deadline::never(); }
  std::atomic<int> consumed{0};
  std::function<void()> onPass;

 private:
  int fd_;
};

TEST(ProgressEngineTest, SleepingCallerWakesForItsEventWhicheverThreadEpollWakes) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  PipeClient client(p[0]);
  ProgressEngine engine;
  ASSERT_TRUE(engine.init(&client, 0).isOk());
  engine.setSpinPolicy(0, false);            // sleep at once: every wait goes through epoll
  engine.delayBackgroundPassesForTest(100);  // a preempted engine thread
  ASSERT_TRUE(engine.addFd(p[0]).isOk());
  engine.startThread();

  // A writer sends one byte per request after a short random delay, so the
  // caller is usually asleep by then (and so is the engine thread).
  std::atomic<int> requested{0};
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    std::mt19937 rng(7);
    int sent = 0;
    while (!stop.load()) {
      if (requested.load() == sent) {
        std::this_thread::yield();
        continue;
      }
      std::this_thread::sleep_for(std::chrono::microseconds(rng() % 300));
      char b = 1;
      ASSERT_EQ(::write(p[1], &b, 1), 1);
      ++sent;
    }
  });

  // The engine's sleep is capped at 100 ms when nothing is due; a wait that
  // long means the caller slept through its event.
  constexpr auto kLostWakeUp = std::chrono::milliseconds(60);
  int lost = 0;
  double slowestMs = 0;
  for (int i = 1; i <= 1000 && lost < 3; ++i) {
    // The application computes between calls: the engine thread, seeing no
    // caller, may go to sleep on the epoll set just before the next call.
    auto busy = std::chrono::steady_clock::now() + std::chrono::microseconds(50);
    while (std::chrono::steady_clock::now() < busy) {
    }
    auto t0 = std::chrono::steady_clock::now();
    requested.store(i);
    bool ok =
        engine.driveUntil([&] { return client.consumed.load() >= i; }, Deadline::afterMs(5000));
    auto took = std::chrono::steady_clock::now() - t0;
    ASSERT_TRUE(ok) << "wait " << i << " never completed";
    slowestMs = std::max(slowestMs, std::chrono::duration<double, std::milli>(took).count());
    if (took >= kLostWakeUp) ++lost;
  }
  stop.store(true);
  writer.join();
  engine.stopThread();
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(lost, 0) << "waits that slept through their event (slowest " << slowestMs << " ms)";
}

// The engine thread passes only while no caller drives: a pass that finished
// a caller's wait between the caller's last look and its sleep would leave it
// asleep until its timeout (seen as 100 ms stalls in a 4-byte all-reduce).
TEST(ProgressEngineTest, EngineThreadNeverPassesWhileACallerDrives) {
  int p[2];
  ASSERT_EQ(::pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
  PipeClient client(p[0]);
  std::atomic<bool> driving{false};
  std::atomic<std::thread::id> driver{};
  std::atomic<int> violations{0};
  client.onPass = [&] {
    if (driving.load() && std::this_thread::get_id() != driver.load()) violations.fetch_add(1);
  };
  ProgressEngine engine;
  ASSERT_TRUE(engine.init(&client, 0).isOk());
  engine.setSpinPolicy(0, false);
  engine.delayBackgroundPassesForTest(100);  // a preempted engine thread
  ASSERT_TRUE(engine.addFd(p[0]).isOk());
  engine.startThread();
  driver.store(std::this_thread::get_id());

  // A steady trickle of bytes keeps waking the engine thread between calls.
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (!stop.load()) {
      char b = 1;
      (void)!::write(p[1], &b, 1);
      auto until = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
      while (std::chrono::steady_clock::now() < until) {
      }
    }
  });
  auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(1000);
  int calls = 0;
  while (std::chrono::steady_clock::now() < end && violations.load() == 0) {
    auto busy = std::chrono::steady_clock::now() + std::chrono::microseconds(20);
    while (std::chrono::steady_clock::now() < busy) {
    }
    int want = client.consumed.load() + 1;
    // done() runs under the engine lock inside driveUntil: from its first
    // "not yet" to its "done", this caller is waiting.
    engine.driveUntil(
        [&] {
          bool d = client.consumed.load() >= want;
          driving.store(!d);
          return d;
        },
        Deadline::afterMs(5000));
    ++calls;
  }
  stop.store(true);
  writer.join();
  engine.stopThread();
  ::close(p[0]);
  ::close(p[1]);
  EXPECT_EQ(violations.load(), 0) << "engine-thread passes during a caller's wait (" << calls
                                  << " calls)";
}

// wake() (a membership event, an asynchronous request) is not lost when it
// lands between a caller's last pass and its registration as a sleeper: the
// event is only seen by a pass, and the caller must not sleep through it.
// The client posts it from beforeSleep, i.e. exactly inside that window.
class LateWakeClient final : public ProgressEngine::Client {
 public:
  bool progressPass(const int*, int, bool, int64_t) override {
    if (!flag.exchange(false)) return false;
    handled.fetch_add(1);
    return true;
  }
  void beforeSleep() override {
    if (!postNow) return;
    postNow = false;
    flag.store(true);
    engine->wake();  // as the membership thread would, just later
  }
  bool wantsBackgroundProgress() override { return false; }
  Deadline nextTimer() override { return Deadline::never(); }
  ProgressEngine* engine = nullptr;
  bool postNow = false;
  std::atomic<bool> flag{false};
  std::atomic<int> handled{0};
};

TEST(ProgressEngineTest, WakeJustBeforeACallerSleepsIsNotLost) {
  LateWakeClient client;
  ProgressEngine engine;
  client.engine = &engine;
  ASSERT_TRUE(engine.init(&client, 0).isOk());
  engine.setSpinPolicy(0, false);  // sleep right after the first empty pass
  for (int i = 1; i <= 20; ++i) {
    client.postNow = true;
    auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE(
        engine.driveUntil([&] { return client.handled.load() >= i; }, Deadline::afterMs(5000)));
    double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    // The engine's sleep is capped at 100 ms; a lost wake-up costs all of it.
    EXPECT_LT(ms, 50) << "wait " << i << " slept through a wake()";
  }
}

}  // namespace
}  // namespace chorus

namespace chorus {
namespace {

// Spinning pays off only where some link can answer within a spin window.
TEST(SpinPolicy, SpinsUnlessEveryLinkIsLong) {
  EXPECT_TRUE(spinPaysOff({}, false));              // no links known yet
  EXPECT_TRUE(spinPaysOff({100000, 80000}, true));  // a shared-memory peer
  EXPECT_TRUE(spinPaysOff({100000, 40}, false));    // one loopback/LAN socket
  EXPECT_TRUE(spinPaysOff({100000, 0}, false));     // an RTT not measured yet
  EXPECT_TRUE(spinPaysOff({999}, false));
  EXPECT_FALSE(spinPaysOff({1000}, false));
  EXPECT_FALSE(spinPaysOff({100000, 100500, 30000}, false));  // all WAN
}

}  // namespace
}  // namespace chorus
