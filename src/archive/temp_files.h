#pragma once
// Empty temp files made ahead, and kept open, by a thread of their own, so that a thread
// receiving an instance does not pay for creating one. On ext4 a new inode can cost as much as writing half a
// megabyte: without a journal (this project's test machines), the inode allocator reads the
// on-disk inode of every free slot it considers and walks past each one freed in the last
// ~30 s. A receiver answers the sender only after the file is written, so under C-GET, C-MOVE
// and WADO-RS that cost was paid once per instance on the critical path (perf: 10-25 % of the
// receiving thread).
//
// The files wait, empty, in tmp/ahead/. Take() moves one to a fresh name in tmp/ (a rename:
// no new inode) and hands out that path with the open descriptor, to write from offset 0. The
// caller must not reopen it with O_TRUNC: ext4 then writes the file back on close, at once
// (auto_da_alloc, meant for the truncate-and-rewrite pattern), which costs more than the
// inode. A path in tmp/ always names data in flight, tmp/ahead/ only empty files. When none is
// ready (a burst, a full disk) Take() returns a fresh name and fd -1: the caller creates the
// file. The destructor closes and removes what is left in tmp/ahead/. Thread-safe.
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>

#include "archive/blob_store.h"
#include "core/temp_file.h"

namespace pb {

class TempFilesAhead {
 public:
  // `keep`: files to hold ready (0: none, no thread).
  TempFilesAhead(BlobStore& blobs, size_t keep);
  ~TempFilesAhead();
  TempFilesAhead(const TempFilesAhead&) = delete;
  TempFilesAhead& operator=(const TempFilesAhead&) = delete;

  // A fresh path in tmp/: an empty file made ahead, open for writing, when one was ready; else
  // a name not yet used, with fd -1.
  TempFile Take();

  size_t ready() const;  // files waiting now (tests)

  static constexpr const char* kFolder = "ahead";  // under tmp/

 private:
  void Loop();

  BlobStore& blobs_;
  const size_t keep_;
  const std::filesystem::path dir_;
  mutable std::mutex mu_;
  std::condition_variable wake_;
  std::deque<TempFile> ready_;               // GUARDED_BY(mu_)
  bool stopping_ = false;                    // GUARDED_BY(mu_)
  uint64_t made_ = 0;                        // GUARDED_BY(mu_): names in dir_
  bool warned_ = false;                      // GUARDED_BY(mu_): the last failure was logged
  std::thread maker_;
};

}  // namespace pb
