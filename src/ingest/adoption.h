#pragma once
// Servers that share a data directory (one PostgreSQL index) each keep their temp files and
// journals in their own `instances/<id>/` folder. When one stops without indexing everything its
// journals name (a crash, kill -9, its machine gone), the first other instance to look takes its
// folder over: it indexes what those journals name (the files are already in the shared archive
// or staging area, and their senders were told success), removes the journals and the dead
// instance's temp files, and lets the folder go. A folder is only taken over while no process
// holds its lock, so a running instance's journals are never touched, and an instance that
// restarts meanwhile waits for the takeover to finish.
#include <filesystem>
#include <functional>
#include <string>

#include "ingest/pipeline.h"

namespace pb {

struct Adopted {
  int instances = 0;   // folders taken over
  int indexed = 0;     // instances indexed from their journals
  int temp_files = 0;  // unfinished temp files removed
};

enum class Takeover {
  kRunning,  // the instance runs (or another one is taking its folder over right now)
  kStopped,  // it does not run, and nothing its journals name is left unindexed
  kUnknown,  // its folder cannot be looked at, or its journals cannot be indexed yet
};

// Instance `id`'s folder, once: when it does not run, what its journals name is indexed and its
// temp files removed (added to `counts`), then `while_held` runs, still holding the folder (an
// instance restarting meanwhile waits), and kStopped is answered: whoever takes over its other
// work (staging sessions) does it there and finds every row it answered for. An instance whose
// folder is not in this data directory is kUnknown. Id "" is the journal and temp folders of a
// server that owned the directory alone (before instances shared it).
Takeover AdoptInstance(const std::filesystem::path& data_dir, const std::string& id, const std::string& self,
                       IngestPipeline& pipeline, Adopted* counts = nullptr,
                       const std::function<void()>& while_held = {});

// Looks at every other instance's folder once (and the folders of a server that owned the
// directory alone). An error (the index refuses the rows) is logged
// and leaves that folder's journals in place for the next look; the other folders are still
// looked at.
Adopted AdoptStoppedInstances(const std::filesystem::path& data_dir, const std::string& self, IngestPipeline& pipeline);

}  // namespace pb
