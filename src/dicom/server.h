#pragma once
// The association acceptor of one receiver: our own listening socket (any bind address, IPv4
// or IPv6), a pool of worker threads, one association per worker. Accepts C-ECHO and C-STORE
// for every storage SOP class; each data set streams from the socket into a temp file given by
// the sink (bit-preserving, with a file meta header) and the sink decides the answer.
//
// Associations beyond the pool wait in a queue of the same size; beyond that, or after waiting
// too long, they are rejected with "temporary congestion", never dropped silently.
// Thread-safe: Start/Stop from one thread; the sink is called from worker threads concurrently.
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "dicom/dataset.h"
#include "dicom/flat_item.h"
#include "dicom/instance_record.h"
#include "dicom/mpps.h"
#include "dicom/query_scp.h"
#include "dicom/retrieve_scp.h"

#include "core/result.h"

namespace pb::dicom {

struct IncomingInstance {
  std::filesystem::path temp_file;  // complete data set with file meta header
  std::string sop_class_uid, sop_instance_uid, transfer_syntax_uid;
  std::string calling_ae, called_ae, peer_address;
  int64_t file_size = -1;
  std::string move_originator_ae;  // set by a PACS sending for a C-MOVE
  int move_originator_id = -1;
  std::optional<InstanceRecord> header;  // parsed while receiving, when the first bytes held it
  bool answered = false;                 // Success was sent before the store (StoreSink::AnswerBeforeStore)
};

struct StoreAnswer {
  StoreAnswer(uint16_t s = 0, std::string comment = {}) : status(s), error_comment(std::move(comment)) {}
  uint16_t status = 0;  // DIMSE status
  std::string error_comment;
  // Set when the sink changed the data set before storing it (anonymization, processors): its
  // UIDs as stored, which may differ from the ones sent (STOW-RS answers point at these).
  bool changed = false;
  std::string stored_sop_uid, stored_study_uid, stored_series_uid;
};

class StoreSink {
 public:
  virtual ~StoreSink() = default;
  virtual std::filesystem::path NewTempPath() = 0;
  // Owns `in.temp_file` from now on: must move it into the archive or delete it.
  virtual StoreAnswer Store(const IncomingInstance& in) = 0;
  // True: data sets arrive in memory through StoreDataset() and never touch the disk as
  // received (`in.temp_file` is empty), for sinks that change data before storing it.
  virtual bool WantsDataset() const { return false; }
  // Held while an instance answered before it was stored is being stored (see below).
  class PendingStore {
   public:
    virtual ~PendingStore() = default;
    // Store() returned; `stored`: with Success. Dropped unfinished: not stored.
    virtual void Finished(bool stored) = 0;
  };
  // Non-null: whoever asked for this instance checks on its own that it reached the archive and
  // fetches it again if not (a retrieve job's C-GET, or its C-MOVE matched by Move Originator),
  // so a data set received whole may be answered before it is stored; Finished() is called once
  // Store() returned, and the asker waits for that (and counts what failed) before it checks.
  // `in.header` is set.
  virtual std::unique_ptr<PendingStore> AnswerBeforeStore(const IncomingInstance& /*in*/) { return nullptr; }
  virtual StoreAnswer StoreDataset(const IncomingInstance& in, Dataset& data);
};

// A Modality Performed Procedure Step request a receiver took (N-CREATE or N-SET).
struct MppsRequest {
  bool create = true;            // N-CREATE; false: N-SET
  std::string sop_instance_uid;  // an N-CREATE that names none gets one made here
  std::string calling_ae, called_ae, peer_address;
  FlatItem attributes;     // UTF-8
  std::string dicom_json;  // the same in the DICOM JSON model
  std::string forward_to;  // the receiver's mpps_forward: a node to pass accepted requests on to
};

// Decides the status of each MPPS request (and keeps what it accepts); called from worker
// threads concurrently.
class MppsSink {
 public:
  virtual ~MppsSink() = default;
  virtual NAnswer Receive(const MppsRequest& request) = 0;
};

// Who may open an association on a listener, decided per association. Several receivers may
// share one port, one AE title each.
struct Admission {
  enum class Verdict { kAccept, kUnknownCalledAe, kCallingAeNotAllowed };
  Verdict verdict = Verdict::kUnknownCalledAe;
  std::shared_ptr<StoreSink> sink;         // kAccept: where this association's instances go
  std::string preferred_transfer_syntax;   // chosen first when offered (UID); may be empty
  std::string name;                        // the receiver, for log lines
  std::shared_ptr<MppsSink> mpps;          // set: MPPS N-CREATE/N-SET are accepted and go here
  std::string mpps_forward;                // the node accepted MPPS requests are passed on to
  std::shared_ptr<QuerySink> query;        // set: C-FIND (Patient and Study Root) is accepted and goes here
  std::shared_ptr<RetrieveSink> retrieve;  // set with `query`: C-GET and C-MOVE are accepted and go here
};
using AdmitFunction = std::function<Admission(const std::string& called_ae, const std::string& calling_ae,
                                              const std::string& peer_address)>;

struct ServerTls {
  bool enabled = false;
  std::string cert_file, key_file;  // PEM
  std::string ca_file;              // PEM: client certificates are checked against it
  bool require_client_cert = false;
};

struct ServerOptions {
  std::string ae_title;
  ServerTls tls;  // TLS only on this port (BCP 195 profile) when enabled
  std::string bind = "0.0.0.0";
  uint16_t port = 104;  // 0: any free port (tests)
  int workers = 8;
  int idle_timeout_seconds = 60;  // an association silent this long is aborted
  // C-FIND/C-GET/C-MOVE identifiers that stall this long are abandoned (C-STORE data sets and
  // responses the peer does not read: DCMTK's 60 s socket timeouts).
  int dimse_timeout_seconds = 60;
  int request_timeout_seconds = 5;  // time for a new connection to send its A-ASSOCIATE-RQ
  int max_queue_wait_seconds = 20;
  // The transfer syntax (UID) to choose first for data from a calling AE title, e.g. a node's
  // preferred compression during a C-MOVE; empty: our default order.
  std::function<std::string(const std::string& calling_ae)> preferred_transfer_syntax;
  // When set, decides every association instead of `ae_title` and the constructor's sink.
  AdmitFunction admit;
};

class AssociationServer {
 public:
  AssociationServer(ServerOptions options, StoreSink& sink);
  ~AssociationServer();
  AssociationServer(const AssociationServer&) = delete;
  AssociationServer& operator=(const AssociationServer&) = delete;

  // Binds and starts listening; errors name the address and the reason.
  [[nodiscard]] Result<void> Start();
  // Stops accepting, lets running operations finish, closes idle associations, joins threads.
  void Stop();
  // The first half of Stop(), which never waits on a peer: the port closes (new connections
  // are refused) and idle associations are closed; running ones go on until Stop().
  void StopAccepting();
  uint16_t port() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace pb::dicom
