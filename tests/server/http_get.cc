#include "tests/server/http_get.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cctype>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace attnserve::server::testing {
namespace {

sockaddr_in Loopback(int port) {
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_port = htons(static_cast<uint16_t>(port));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return address;
}

// Closes the socket however the function returns.
class Socket {
 public:
  Socket() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  int fd() const { return fd_; }

 private:
  const int fd_;
};

}  // namespace

absl::StatusOr<HttpResponse> HttpGet(int port, const std::string& target,
                                     absl::Duration timeout) {
  return HttpGet("127.0.0.1", port, target, timeout);
}

absl::StatusOr<HttpResponse> HttpGet(const std::string& ipv4, int port,
                                     const std::string& target,
                                     absl::Duration timeout) {
  const absl::Time give_up = absl::Now() + timeout;
  Socket socket;
  sockaddr_in address = Loopback(port);
  if (inet_pton(AF_INET, ipv4.c_str(), &address.sin_addr) != 1) {
    return absl::InvalidArgumentError(absl::StrCat("not IPv4: ", ipv4));
  }
  if (socket.fd() < 0 ||
      connect(socket.fd(), reinterpret_cast<const sockaddr*>(&address),
              sizeof(address)) != 0) {
    return absl::UnavailableError(
        absl::StrCat("nothing listens on ", ipv4, ":", port));
  }
  const std::string request = absl::StrCat(
      "GET ", target, " HTTP/1.0\r\nHost: ", ipv4, ":", port, "\r\n\r\n");
  if (send(socket.fd(), request.data(), request.size(), MSG_NOSIGNAL) !=
      static_cast<ssize_t>(request.size())) {
    return absl::UnavailableError("cannot send the request");
  }
  std::string answer;
  while (true) {
    pollfd fd{socket.fd(), POLLIN, 0};
    const int wait_ms =
        static_cast<int>(absl::ToInt64Milliseconds(give_up - absl::Now()));
    if (wait_ms <= 0 || poll(&fd, 1, wait_ms) <= 0) {
      return absl::DeadlineExceededError(
          absl::StrCat("no complete answer from ", ipv4, ":", port, target));
    }
    char chunk[16384];
    const ssize_t n = recv(socket.fd(), chunk, sizeof(chunk), 0);
    if (n < 0) return absl::UnavailableError("connection reset");
    if (n == 0) break;  // HTTP/1.0: the body ends with the connection
    answer.append(chunk, n);
  }
  // "HTTP/1.x 200 OK\r\n" headers "\r\n\r\n" body
  const size_t body = answer.find("\r\n\r\n");
  HttpResponse response;
  if (answer.compare(0, 5, "HTTP/") != 0 || body == std::string::npos ||
      answer.size() < 12 ||
      !absl::SimpleAtoi(answer.substr(9, 3), &response.status)) {
    return absl::DataLossError(
        absl::StrCat("not an HTTP answer: ", answer.substr(0, 100)));
  }
  response.body = answer.substr(body + 4);
  return response;
}

absl::StatusOr<double> ScrapeValue(int port, const std::string& series) {
  absl::StatusOr<HttpResponse> response = HttpGet(port, "/metrics");
  if (!response.ok()) return response.status();
  const std::string prefix = absl::StrCat("\n", series, " ");
  const std::string body = absl::StrCat("\n", response->body);
  const size_t at = body.find(prefix);
  double value = 0;
  if (at == std::string::npos ||
      !absl::SimpleAtod(
          body.substr(at + prefix.size(),
                      body.find('\n', at + prefix.size()) - at - prefix.size()),
          &value)) {
    return absl::NotFoundError(absl::StrCat("no ", series, " in /metrics"));
  }
  return value;
}

std::string UrlEncode(const std::string& text) {
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out += absl::StrFormat("%%%02X", c);
    }
  }
  return out;
}

int FreeLoopbackPort() {
  Socket socket;
  sockaddr_in address = Loopback(0);
  socklen_t length = sizeof(address);
  if (socket.fd() < 0 ||
      bind(socket.fd(), reinterpret_cast<sockaddr*>(&address), length) != 0 ||
      getsockname(socket.fd(), reinterpret_cast<sockaddr*>(&address),
                  &length) != 0) {
    return 0;
  }
  return ntohs(address.sin_port);
}

}  // namespace attnserve::server::testing
