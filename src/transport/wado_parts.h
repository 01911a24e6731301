#pragma once
// A WADO-RS answer's multipart body, taken apart as it streams (dicomweb/multipart): each part
// is written to a temp file and, once complete, handed to the one ingest path (the fetch's
// StoreSink) by a worker thread of its own, so the network is read while the previous part is
// indexed. At most a few complete parts wait (bounded disk, never memory). A part that is not
// DICOM, or holds an instance the request did not ask for, is dropped and named; nothing
// half-written is ever ingested, and no temp file is left behind on any path. When the sink
// changes data (anonymization), a part is kept in memory instead and never reaches the disk as
// it came (one part at a time, as an anonymizing receiver holds one instance). The worker also
// opens the next parts' temp files ahead and hands back the buffers of parts it is done with,
// so the network thread only writes (creating a file costs as much as writing 0.5 MB).
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "core/result.h"
#include "core/thread_annotations.h"
#include "dicom/server.h"
#include "dicomweb/multipart.h"
#include "nodes/node.h"
#include "transport/transport.h"

namespace pb {

class WadoParts {
 public:
  struct Scope {
    std::string study, series, sop;  // what the request asked for (empty: any)
  };
  WadoParts(dicom::StoreSink& sink, const Node& node, Scope scope, const FetchHooks& hooks);
  ~WadoParts();  // drains what is complete, drops what is not
  WadoParts(const WadoParts&) = delete;
  WadoParts& operator=(const WadoParts&) = delete;

  // The answer's Content-Type (its boundary); then the body in chunks; then its end.
  [[nodiscard]] Result<void> Begin(const std::string& content_type);
  [[nodiscard]] Result<void> Feed(std::string_view chunk);
  [[nodiscard]] Result<void> Finish();
  // Waits until every complete part is ingested; then the results below are final.
  void Drain();

  const std::vector<std::string>& problems() const { return problems_; }         // after Drain
  const std::vector<std::string>& refused_uids() const { return refused_; }      // after Drain
  const std::vector<std::string>& discarded_uids() const { return discarded_; }  // after Drain
  int stored() const;

 private:
  struct Complete {
    std::filesystem::path path;  // on disk, or
    std::string data;            // in memory (the sink changes data); on disk: its first bytes
    int64_t bytes = 0;
    int index = 0;
  };
  [[nodiscard]] Result<void> OnPart(int index, const dicomweb::MultipartParser::Headers& headers);
  [[nodiscard]] Result<void> OnData(std::string_view data);
  [[nodiscard]] Result<void> OnPartEnd();
  void Work();
  void Ingest(const Complete& part);
  void IngestInMemory(const Complete& part);
  void Settle(const dicom::StoreAnswer& answer, const std::string& sop_uid);  // counts the sink's answer
  bool Asked(const std::string& study, const std::string& series, const std::string& sop, int index);
  void Problem(std::string text);
  std::optional<Error> Fatal();
  void Discard();
  bool WantsFile() const REQUIRES(mu_);  // the worker should open a temp file ahead
  void RemoveReady();                    // the files opened ahead and not used

  dicom::StoreSink& sink_;
  const Node& node_;
  const Scope scope_;
  const FetchHooks& hooks_;
  std::optional<dicomweb::MultipartParser> parser_;
  // The part being written (the network thread's).
  std::filesystem::path path_;
  int fd_ = -1;
  std::string memory_;  // the part being received when in memory, else its first bytes
  const bool in_memory_;
  int index_ = 0;
  bool skip_ = false;
  int64_t bytes_ = 0, polled_at_ = 0;
  // Shared with the worker.
  mutable Mutex mu_;
  std::condition_variable changed_;
  std::deque<Complete> queue_ GUARDED_BY(mu_);
  bool closing_ GUARDED_BY(mu_) = false;
  int stored_ GUARDED_BY(mu_) = 0;
  std::optional<Error> fatal_ GUARDED_BY(mu_);  // stop the transfer (disk full)
  std::vector<std::string> problems_ GUARDED_BY(mu_);
  std::vector<std::string> refused_ GUARDED_BY(mu_);
  std::vector<std::string> discarded_ GUARDED_BY(mu_);
  struct Ready {
    std::filesystem::path path;
    int fd = -1;
  };
  bool open_ahead_ GUARDED_BY(mu_) = false;               // parts go to disk and opening works
  std::deque<Ready> ready_ GUARDED_BY(mu_);               // temp files opened for the next parts
  std::vector<std::string> spare_heads_ GUARDED_BY(mu_);  // used head buffers, kept for their room
  std::thread worker_;
};

}  // namespace pb
