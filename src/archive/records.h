#pragma once
// Rows of the archive index, as plain values. Attribute values are UTF-8.
#include <cstdint>
#include <string>
#include <vector>

#include "dicom/instance_record.h"

namespace pb {

// One "test connection" of a node, as kept in its history.
struct NodeTestRecord {
  int64_t id = 0;
  std::string at;  // UTC, ISO 8601
  bool ok = false;
  std::string message;
  int64_t latency_ms = 0;
  std::string checks_json = "[]";  // the checks as the API gives them
};

// A Modality Performed Procedure Step (migration 008), sent by us or received.
struct MppsRecord {
  std::string direction;  // "sent" or "received"
  std::string sop_instance_uid;
  std::string node;                     // sent: the node it went to
  std::string receiver_ae, calling_ae;  // received: our receiver's AE title, the modality's
  std::string status;                   // IN PROGRESS, COMPLETED, DISCONTINUED
  std::string accession_number, study_instance_uid, patient_id, patient_name, scheduled_step_id, modality;
  std::string attributes = "{}";  // DICOM JSON of the step as it stands
  std::string history = "[]";     // JSON array
  std::string created_at, updated_at;
};

struct MppsFilter {
  std::string direction, status, accession_number, study_instance_uid, node;
  int limit = 200;
};

// Accounts (migration 007). Roles are "admin", "user" or "read-only" (src/auth/role.h).
struct UserRecord {
  std::string username, role, password_hash;                   // the hash in Argon2id's encoded form
  std::string created_at, password_changed_at, last_login_at;  // ISO 8601 UTC; "" never
  // The projects the account may see through the DICOMweb server (as a receiver's
  // query_retrieve_projects); empty: all.
  std::vector<std::string> projects;
};

// A web UI session; the cookie's value is known to the browser only, we keep its SHA-256.
struct SessionRecord {
  std::string id_hash, username, csrf_token, client;
  int64_t created_s = 0, last_seen_s = 0, expires_s = 0;  // Unix seconds; expires_s: absolute end
};

// An API token; kept as the SHA-256 of its secret.
struct TokenRecord {
  std::string id, username, name, role, token_hash;
  int64_t created_s = 0, expires_s = 0 /* 0: never */, last_used_s = 0 /* 0: never */;
};

// One entry of the audit log; before/after are the resource as the API shows it (JSON text).
struct AuditRecord {
  int64_t id = 0;
  std::string at, actor, via, client, request_id, action, target_type, target;
  std::string before_json = "null", after_json = "null";
};

struct AuditFilter {
  std::string actor, target_type, action;  // "" any
  std::string since, until;                // `at` bounds, ISO 8601 UTC, inclusive ("" = none)
  int limit = 100;
};

struct StudyRow {
  std::string study_uid, patient_id, patient_name, patient_birth_date, patient_sex, study_date, study_time,
      accession_number, study_id, description, modalities;
  int64_t series_count = 0, instance_count = 0;
};

struct SeriesRow {
  std::string series_uid, study_uid, modality, series_number, description, body_part;
  int64_t instance_count = 0;
};

struct InstanceRow {
  std::string sop_uid, series_uid, study_uid, sop_class_uid, instance_number, transfer_syntax_uid, file_path,
      received_at, source_ae;
  int64_t file_size = 0;
};

// An instance and its WADO-RS metadata (the DICOM JSON object of migration 010); `json` is
// empty while it has not been written yet. `received_at` tells the version of the file it was
// (or is to be) made from.
struct MetadataRow {
  int64_t pk = 0, version = 0;  // version: of the instance's row (migration 012)
  std::string sop_uid, series_uid, study_uid, file_path, received_at, json;
};

// Filters of GET /api/studies: DICOM keywords with '*' and '?' wildcards, date ranges.
struct StudyFilter {
  std::string patient_id, patient_name, study_uid, accession_number, modality, study_date;
  // Not empty: only studies with a series filed in one of these projects, counted over those
  // series alone (an account's limit).
  std::vector<std::string> projects;
  int limit = 1000;
  int offset = 0;
};

// A job as stored: the columns the queue needs, the rest as JSON owned by the job kind.
struct JobRow {
  int64_t id = 0;
  std::string type, state, node;
  std::string params = "{}", progress = "{}", result = "{}";  // JSON text
  std::string error;
  bool interrupted = false;
  int priority = 0, attempts = 0;  // priority: 1 high, 0 normal, -1 low; attempts: runs so far
  int64_t retry_of = 0;            // 0: none
  std::string created_at, started_at, finished_at, updated_at;
  std::string history = "[]";  // JSON: one entry per run
  bool paused = false;
  int64_t queue_order = 0;  // within a priority, lower runs first
  std::string not_before;   // a waiting job's next attempt (ISO 8601 UTC), "" otherwise
  std::string wait_reason;  // what a waiting job waits for: "retry", "schedule", "confirmation",
                            // "children" or "" (paused)
  int64_t parent_id = 0;    // the job this one is part of (an import's retrieves), 0: none
  // The instance ([server] instance_id) that claimed the job last, and, while it runs, until
  // when that instance holds it (ISO 8601 UTC; renewed by its heartbeat; "" otherwise).
  std::string owner, lease_until;
  // What was asked through another instance while this job ran: "cancel", "pause" or "".
  std::string requested;
};

// Several instances on one database: a node's connection limit, counted over the running jobs
// of every instance (those whose lease ended before `lease_now` hold none: their instance is gone),
// and for the claim of a retrieve, its limit of retrieves at once counted the same way.
struct NodeConnectionLimit {
  std::string node;
  int max = 1;
  std::string lease_now;  // ISO 8601 UTC, on the leases' clock
  int max_retrieves = 0;  // > 0: the job claimed is a retrieve, and at most this many run at once
};

// Several instances on one database: a node's utilization share as all of them used it (the
// jobs module's DutyCycle, saved; microseconds since 1970).
struct NodeDutyRecord {
  int64_t stretch_start_us = 0, stretch_end_us = 0, minute_us = 0, used_us = 0;
  bool in_stretch = false;
};

// One row of an import's spreadsheet, with what the node answered for it.
struct ImportRowRecord {
  int64_t job_id = 0;
  int line = 0;
  std::string query = "{}";  // JSON: keyword → value
  std::string project, subject, session;
  std::string state = "pending";  // pending, no_match, one_match, several_matches, error
  std::string error;
  std::string matches = "[]";  // JSON array of the studies found
  std::string choice;          // "", "all" or "none"
};

// One project, subject or session of the archive by labels, with what it holds.
struct LabelCount {
  std::string name;
  int64_t subjects = 0, sessions = 0, studies = 0, series = 0, instances = 0;
  std::string modalities;
};

// A session waiting in the staging area, and its instances.
struct StagedSession {
  int64_t id = 0;
  std::string receiver, project, subject, session, state, first_at, last_at;
  int64_t instance_count = 0, bytes = 0;
  std::string owner;  // the instance that opened it (servers sharing a data directory), or ""
};
struct StagedInstance {
  int64_t session_id = 0;
  std::string sop_uid, study_uid, series_uid, file, source_ae, receiver_ae;
  int64_t size = 0;
};

// The labels a series of the archive is filed under (a series keeps the labels it was first
// filed under, unless it had none), and how many instances it holds.
struct FiledSeries {
  std::string project, subject, session;
  int64_t instance_count = 0;
};

struct JobFilter {
  std::string state, type, node;
  std::string since, until;  // created_at bounds, ISO 8601 UTC, inclusive ("" = none)
  int limit = 100;
  int64_t parent = 0;  // only the jobs of this one (0: any)
};

}  // namespace pb
