// chorus-delayline: a user-space WAN delay line on a TUN device.
//
// This kernel has no netem qdisc. The WAN emulator (tools/chorus-wan/
// chorus-wan) routes every packet that crosses between two emulated
// datacenters through a TUN device in a router namespace; this program reads
// each packet, holds it for the link's one-way delay (plus jitter, without
// reordering a flow), drops a share of them (loss), optionally paces each
// flow to a rate cap (per-flow fair queuing as seen on real WANs), and writes
// it back into the TUN device, from where the router forwards it to its
// destination. Packets are delayed, not relayed: TCP end to end sees the
// real round-trip time, window and loss. Link bandwidth is limited by tbf on
// the router's egress interfaces, after this program.
//
// Datacenter of an address: its third octet in 10.77.D.x (the emulator's
// plan). Each link is "SRC DST DELAY_MS JITTER_MS LOSS_PERCENT FLOWCAP_MBIT"
// (one direction; FLOWCAP 0 = no cap), read from --links FILE.
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <poll.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <queue>
#include <random>
#include <sstream>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

namespace {

using Clock = std::chrono::steady_clock;
using Ns = int64_t;

Ns nowNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now().time_since_epoch())
      .count();
}

struct Link {
  Ns delay = 0, jitter = 0;
  double loss = 0;        // probability in [0, 1)
  double flowCapBps = 0;  // bytes per second per flow; 0 = none
  Ns lastRelease = 0;     // jitter never reorders a link
  uint64_t packets = 0, dropsLoss = 0, dropsCap = 0;
};

struct Flow {
  Ns nextFree = 0;  // when the flow's pacer is free again
};

struct Pending {
  Ns release;
  uint64_t seq;
  std::vector<uint8_t> pkt;
  bool operator>(const Pending& o) const {
    return std::tie(release, seq) > std::tie(o.release, o.seq);
  }
};

volatile sig_atomic_t gStop = 0;
void onSignal(int) {
  gStop = 1;
}

int openTun(const std::string& name) {
  int fd = ::open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) return -1;
  ifreq ifr{};
  ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
  std::snprintf(ifr.ifr_name, IFNAMSIZ, "%s", name.c_str());
  if (::ioctl(fd, TUNSETIFF, &ifr) < 0) {
    ::close(fd);
    return -1;
  }
  return fd;
}

// Datacenter index of an IPv4 address in 10.77.D.x; -1 otherwise.
int dcOf(const uint8_t* a) {
  return (a[0] == 10 && a[1] == 77) ? a[2] : -1;
}

// Flow key: addresses, protocol and (TCP/UDP) ports.
uint64_t flowKey(const uint8_t* p, size_t n) {
  uint64_t k = 1469598103934665603ull;
  auto mix = [&](uint64_t v) { k = (k ^ v) * 1099511628211ull; };
  uint32_t src, dst;
  std::memcpy(&src, p + 12, 4);
  std::memcpy(&dst, p + 16, 4);
  mix(src);
  mix(dst);
  mix(p[9]);
  size_t ihl = static_cast<size_t>(p[0] & 0x0f) * 4;
  if ((p[9] == 6 || p[9] == 17) && n >= ihl + 4) {
    uint32_t ports;
    std::memcpy(&ports, p + ihl, 4);
    mix(ports);
  }
  return k;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"chorus-delayline - WAN delay, jitter, loss and per-flow caps on a TUN device"};
  std::string dev = "wan0", linksFile;
  uint64_t seed = 1;
  double queueMs = 200;
  int statsEvery = 0;
  app.add_option("--dev", dev, "TUN device (created if missing)");
  app.add_option("--links", linksFile, "file: SRC DST DELAY_MS JITTER_MS LOSS_PCT FLOWCAP_MBIT")
      ->required();
  app.add_option("--seed", seed, "loss and jitter random seed");
  app.add_option("--flow-queue-ms", queueMs,
                 "a flow's pacer drops a packet that would wait longer than this");
  app.add_option("--stats-sec", statsEvery, "print per-link counters every N seconds");
  CLI11_PARSE(app, argc, argv);

  std::map<std::pair<int, int>, Link> links;
  std::ifstream in(linksFile);
  if (!in) {
    std::fprintf(stderr, "chorus-delayline: cannot read %s\n", linksFile.c_str());
    return 2;
  }
  for (std::string line; std::getline(in, line);) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream ls(line);
    int s, d;
    double delayMs, jitterMs, lossPct, capMbit;
    if (!(ls >> s >> d >> delayMs >> jitterMs >> lossPct >> capMbit) || s < 0 || d < 0 ||
        delayMs < 0 || jitterMs < 0 || lossPct < 0 || lossPct >= 100 || capMbit < 0) {
      std::fprintf(stderr, "chorus-delayline: bad link line '%s'\n", line.c_str());
      return 2;
    }
    Link& l = links[{s, d}];
    l.delay = static_cast<Ns>(delayMs * 1e6);
    l.jitter = static_cast<Ns>(jitterMs * 1e6);
    l.loss = lossPct / 100.0;
    l.flowCapBps = capMbit * 1e6 / 8;
  }

  int fd = openTun(dev);
  if (fd < 0) {
    std::fprintf(stderr, "chorus-delayline: cannot open TUN %s: %s\n", dev.c_str(),
                 std::strerror(errno));
    return 1;
  }
  ::signal(SIGINT, onSignal);
  ::signal(SIGTERM, onSignal);

  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<double> uni(0.0, 1.0);
  std::unordered_map<uint64_t, Flow> flows;
  std::priority_queue<Pending, std::vector<Pending>, std::greater<>> queue;
  const Ns flowQueue = static_cast<Ns>(queueMs * 1e6);
  uint64_t seq = 0, unknown = 0;
  std::vector<uint8_t> buf(65536);
  Ns nextStats = statsEvery > 0 ? nowNs() + statsEvery * Ns{1000000000} : 0;

  while (!gStop) {
    // Release what is due.
    Ns now = nowNs();
    while (!queue.empty() && queue.top().release <= now) {
      const Pending& p = queue.top();
      if (::write(fd, p.pkt.data(), p.pkt.size()) < 0 && errno != EAGAIN && errno != ENOBUFS &&
          errno != EIO) {
        std::perror("chorus-delayline: write");
      }
      queue.pop();
    }
    // Admit what arrived.
    for (int burst = 0; burst < 256; ++burst) {
      ssize_t n = ::read(fd, buf.data(), buf.size());
      if (n < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN) std::perror("chorus-delayline: read");
        break;
      }
      if (n < 20 || (buf[0] >> 4) != 4) continue;  // IPv4 only
      now = nowNs();
      auto it = links.find({dcOf(&buf[12]), dcOf(&buf[16])});
      Ns release = now;
      if (it == links.end()) {
        ++unknown;  // not a configured link: forward without delay
      } else {
        Link& l = it->second;
        ++l.packets;
        if (l.loss > 0 && uni(rng) < l.loss) {
          ++l.dropsLoss;
          continue;
        }
        Ns depart = now;
        if (l.flowCapBps > 0) {
          Flow& f = flows[flowKey(buf.data(), static_cast<size_t>(n))];
          depart = std::max(now, f.nextFree);
          if (depart - now > flowQueue) {
            ++l.dropsCap;  // the flow's queue is full: tail drop
            continue;
          }
          f.nextFree = depart + static_cast<Ns>(static_cast<double>(n) * 1e9 / l.flowCapBps);
        }
        release = depart + l.delay;
        if (l.jitter > 0) release += static_cast<Ns>(uni(rng) * static_cast<double>(l.jitter));
        release = std::max(release, l.lastRelease);
        l.lastRelease = release;
      }
      queue.push(Pending{release, seq++, std::vector<uint8_t>(buf.begin(), buf.begin() + n)});
    }
    if (nextStats && now >= nextStats) {
      nextStats += statsEvery * Ns{1000000000};
      for (auto& [k, l] : links)
        std::fprintf(stderr, "link %d->%d packets %lu lost %lu capdrops %lu\n", k.first, k.second,
                     static_cast<unsigned long>(l.packets), static_cast<unsigned long>(l.dropsLoss),
                     static_cast<unsigned long>(l.dropsCap));
    }
    // Sleep until the next release or the next packet.
    pollfd pfd{fd, POLLIN, 0};
    timespec ts{0, 200 * 1000 * 1000};
    if (!queue.empty()) {
      Ns wait = std::max<Ns>(0, queue.top().release - nowNs());
      if (wait < 200000000) ts = {0, static_cast<long>(wait)};
    }
    if (ts.tv_nsec > 0 || queue.empty()) ::ppoll(&pfd, 1, &ts, nullptr);
  }
  ::close(fd);
  std::fprintf(stderr, "chorus-delayline: stopped (%lu packets outside configured links)\n",
               static_cast<unsigned long>(unknown));
  return 0;
}
