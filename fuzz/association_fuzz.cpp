// What a peer sends to a receiver's port, from its first byte: the accept loop's look at the
// A-ASSOCIATE-RQ, DCMTK's parse of it, the admission (called AE title, whitelist), then
// whatever PDUs and DIMSE messages follow (C-ECHO, C-STORE into the ingest path with
// anonymization, C-FIND, C-GET, C-MOVE, MPPS N-CREATE/N-SET), all on a real receiver service
// with its archive in a temp directory, over loopback. fuzz/run.sh runs this target inside a
// private network namespace.
//
// Per input: connect, write the input, half-close, read the answer until the server closes.
// A crash, a sanitizer report, or a connection the server does not close within 8 s of the
// peer's end (it has nothing left to wait for) is a defect.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/sinks/null_sink.h>
#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "archive/blob_store.h"
#include "archive/database.h"
#include "config/settings.h"
#include "core/clock.h"
#include "dicom/network.h"
#include "ingest/expectations.h"
#include "ingest/pipeline.h"
#include "ingest/staging.h"
#include "mpps/mpps_steps.h"
#include "receivers/receiver_service.h"

namespace {

[[noreturn]] void Die(const char* what) {
  std::fprintf(stderr, "association fuzz: %s (%s)\n", what, std::strerror(errno));
  std::abort();
}

// A port in the receivers' range that nothing holds (the namespace is private: none is held).
uint16_t FreePort() {
  for (uint16_t p = 11112; p < 12112; ++p) {
    const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(p);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    const bool ok = ::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0;
    ::close(fd);
    if (ok) return p;
  }
  Die("no free port");
}

// Everything a receiver stands on, as `serve` builds it; made once, kept for the process.
struct Service {
  std::filesystem::path dir;
  std::unique_ptr<pb::BlobStore> blobs;
  std::unique_ptr<pb::Database> db;
  std::unique_ptr<pb::IngestPipeline> pipeline;
  pb::ExpectationRegistry expectations;
  std::unique_ptr<pb::StagingArea> staging;
  std::unique_ptr<pb::ReceiverService> receivers;
  uint16_t port = 0;
};

Service& TheService() {
  static Service* s = [] {
    auto* s = new Service;  // lives as long as the process (threads of it run to the end)
    // Log lines are formatted (their code runs on hostile values) and dropped; PB_FUZZ_LOG=1
    // shows them (what a seed reaches).
    if (std::getenv("PB_FUZZ_LOG") == nullptr) {
      auto quiet = std::make_shared<spdlog::logger>("fuzz", std::make_shared<spdlog::sinks::null_sink_mt>());
      quiet->set_level(spdlog::level::trace);
      spdlog::set_default_logger(quiet);
    } else {
      spdlog::set_level(spdlog::level::debug);
    }
    pb::dicom::InitializeDicomNetwork("info");
    if (!pb::dicom::LoadDataDictionary()) Die("no DICOM data dictionary");
    s->dir = std::filesystem::temp_directory_path() / ("pb-fuzz-association-" + std::to_string(::getpid()));
    std::filesystem::remove_all(s->dir);
    s->blobs = std::make_unique<pb::BlobStore>(s->dir);
    if (!s->blobs->Prepare()) Die("cannot prepare the data directory");
    auto db = pb::Database::Open(s->dir / "index.db", false);
    if (!db) Die("cannot open the index");
    s->db = std::move(*db);
    s->pipeline = std::make_unique<pb::IngestPipeline>(*s->blobs, *s->db, pb::IngestOptions{});
    s->staging =
        std::make_unique<pb::StagingArea>(*s->pipeline, *s->db, *s->blobs, [](const std::string&) { return 60; });
    s->receivers = std::make_unique<pb::ReceiverService>(*s->pipeline, *s->db, *s->staging, s->expectations, 4,
                                                         "fuzz-site-secret");
    s->receivers->SetMppsSink(std::make_shared<pb::MppsSteps>(*s->db, pb::SystemClock()));
    s->port = FreePort();
    // Three receivers on one port, told apart by the called AE title: one that admits only the
    // AE title FUZZSCU; one that anonymizes and answers Query/Retrieve and MPPS; one that
    // stages what it receives.
    const auto entry = [&](nlohmann::json j) {
      j["port"] = s->port;
      j["bind"] = "127.0.0.1";
      return pb::ConfigEntry{std::move(j), "fuzz", {}};
    };
    const std::vector<pb::ConfigEntry> config{
        entry({{"ae_title", "FUZZSCP"}, {"whitelist_enabled", true}, {"whitelist", "FUZZSCU\n10.9.8.0/24"}}),
        entry({{"ae_title", "QRSCP"}, {"anonymize", true}, {"query_retrieve", true}, {"mpps", true}}),
        entry({{"ae_title", "STAGESCP"}, {"direct_archive", false}, {"staging_idle_seconds", 3600}}),
    };
    if (auto started = s->receivers->Start(config); !started) {
      std::fprintf(stderr, "%s\n", started.error().message.c_str());
      Die("the receivers do not start");
    }
    return s;
  }();
  return *s;
}

// Writes `data` and reads whatever comes back (both at once: the server may answer before it
// has read everything), then half-closes and reads until the server closes.
void Converse(uint16_t port, const uint8_t* data, size_t size) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) Die("socket");
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  // Thousands of connections a minute leave the server's ends in TIME-WAIT; a new connection
  // that meets one of them is refused now and then by the kernel, not by the server: tried again.
  for (int attempt = 0; ::connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0; ++attempt) {
    if (attempt == 50) Die("cannot connect to the receiver");
    ::close(fd);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) Die("socket");
  }
  ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK);
  size_t sent = 0;
  bool half_closed = false;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(8);
  char sink[65536];
  while (true) {
    if (sent == size && !half_closed) {
      ::shutdown(fd, SHUT_WR);
      half_closed = true;
    }
    pollfd p{fd, static_cast<short>(POLLIN | (half_closed ? 0 : POLLOUT)), 0};
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) Die("the server kept the connection open after the peer had sent everything");
    if (::poll(&p, 1, static_cast<int>(left)) < 0) continue;
    if (p.revents & (POLLIN | POLLHUP | POLLERR)) {
      const ssize_t n = ::recv(fd, sink, sizeof sink, 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) break;  // closed (or reset) by the server
    }
    if (!half_closed && (p.revents & POLLOUT)) {
      const ssize_t n = ::send(fd, data + sent, size - sent, MSG_NOSIGNAL);
      if (n > 0) {
        sent += static_cast<size_t>(n);
      } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
        half_closed = true;  // the server closed first: what is left is never read
      }
    }
  }
  ::close(fd);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  Converse(TheService().port, data, size);
  return 0;
}
