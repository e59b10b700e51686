#include "tests/server/test_certs.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace attnserve::testing {
namespace {

// One shell script, so a failure shows every openssl message in one log.
constexpr char kScript[] = R"(set -e
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }
ca() {  # ca NAME SUBJECT
  key "$1.key"
  openssl req -x509 -new -key "$1.key" -out "$1.pem" -days 2 -subj "$2" \
    -addext basicConstraints=critical,CA:TRUE \
    -addext keyUsage=critical,keyCertSign,cRLSign
}
leaf() {  # leaf NAME CA SUBJECT EXTENSIONS
  key "$1.key"
  openssl req -new -key "$1.key" -out "$1.csr" -subj "$3"
  printf '%b' "$4" > "$1.ext"
  openssl x509 -req -in "$1.csr" -CA "$2.pem" -CAkey "$2.key" \
    -CAcreateserial -out "$1.pem" -days 2 -extfile "$1.ext"
}
ca ca "/CN=attnserve test CA"
ca other_ca "/CN=another test CA"
leaf server ca "/CN=localhost" \
  "subjectAltName=DNS:localhost,IP:127.0.0.1\nextendedKeyUsage=serverAuth\n"
leaf named_server ca "/CN=attnserve.test" \
  "subjectAltName=DNS:attnserve.test\nextendedKeyUsage=serverAuth\n"
leaf client ca "/CN=test client" "extendedKeyUsage=clientAuth\n"
leaf other_client other_ca "/CN=stranger" "extendedKeyUsage=clientAuth\n"
)";

}  // namespace

TestCerts::~TestCerts() {
  if (dir.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(dir, ignored);
}

absl::StatusOr<std::unique_ptr<TestCerts>> MakeTestCerts(
    const std::string& parent) {
  std::string pattern = absl::StrCat(parent, "/certs_XXXXXX");
  if (mkdtemp(pattern.data()) == nullptr) {
    return absl::InternalError(absl::StrCat("cannot create ", pattern));
  }
  auto certs = std::make_unique<TestCerts>();
  certs->dir = pattern;
  const std::string script = absl::StrCat(certs->dir, "/make_certs.sh");
  std::ofstream(script) << kScript;
  const std::string log = absl::StrCat(certs->dir, "/openssl.log");
  const std::string command = absl::StrCat(
      "cd '", certs->dir, "' && sh make_certs.sh >'", log, "' 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::InternalError(absl::StrCat(
        "openssl could not make the test certificates (is it installed?):\n",
        ReadTextFile(log)));
  }
  auto path = [&](const char* name) {
    return absl::StrCat(certs->dir, "/", name);
  };
  certs->ca_cert = path("ca.pem");
  certs->server_cert = path("server.pem");
  certs->server_key = path("server.key");
  certs->named_server_cert = path("named_server.pem");
  certs->named_server_key = path("named_server.key");
  certs->client_cert = path("client.pem");
  certs->client_key = path("client.key");
  certs->other_ca_cert = path("other_ca.pem");
  certs->other_client_cert = path("other_client.pem");
  certs->other_client_key = path("other_client.key");
  return certs;
}

std::string ReadTextFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

const TestCerts* SharedTestCerts() {
  static const TestCerts* const certs = [] {
    absl::StatusOr<std::unique_ptr<TestCerts>> made =
        MakeTestCerts(::testing::TempDir());
    if (!made.ok()) {
      std::fprintf(stderr, "test certificates: %s\n",
                   made.status().ToString().c_str());
      return static_cast<TestCerts*>(nullptr);
    }
    return made->release();  // kept for the whole process
  }();
  return certs;
}

}  // namespace attnserve::testing
