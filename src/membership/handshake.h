// Control-plane I/O on Asio sockets (C++20 coroutines) and the mutual
// challenge-response handshake used by coordinator links and data links.
#pragma once

#include <asio/awaitable.hpp>
#include <asio/ip/tcp.hpp>
#include <asio/steady_timer.hpp>

#include <functional>
#include <memory>
#include <string>

#include "src/core/clock.h"
#include "src/core/status.h"
#include "src/membership/control_link.h"
#include "src/protocol/control.h"

namespace chorus::membership {

using tcp = asio::ip::tcp;

// Read one control message; errors (EOF, bad header, oversized body) as Status.
asio::awaitable<Result<control::Message>> readMessage(ControlLink& s);
asio::awaitable<Status> writeMessage(ControlLink& s, control::Type type,
                                     const std::vector<uint8_t>& body);

// Client half: sends HELLO (nonce filled in here), checks the server's proof,
// proves the secret, waits for WELCOME.
asio::awaitable<Status> clientHandshake(ControlLink& s, const std::string& secret,
                                        control::Hello hello);
// Server half: returns the authenticated HELLO. `admit` may refuse it (its
// status is sent to the client as an ERROR).
asio::awaitable<Result<control::Hello>> serverHandshake(
    ControlLink& s, const std::string& secret,
    const std::function<Status(const control::Hello&)>& admit);

// Connect to host:port (resolving names) before the deadline.
asio::awaitable<Status> connectTo(tcp::socket& s, const std::string& host, uint16_t port,
                                  Deadline deadline);

// Closes the socket if the deadline passes before the Watchdog is destroyed.
class Watchdog {
 public:
  Watchdog(tcp::socket& s, Deadline d);
  ~Watchdog();
  bool fired() const { return *fired_; }

 private:
  asio::steady_timer timer_;
  std::shared_ptr<bool> alive_;
  std::shared_ptr<bool> fired_;
};

std::string endpointString(const tcp::socket& s, bool remote);

}  // namespace chorus::membership
