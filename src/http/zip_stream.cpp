#include "http/zip_stream.h"

#include <archive.h>
#include <archive_entry.h>
#include <sys/stat.h>

#include <fstream>
#include <vector>

#include <fmt/format.h>

namespace pb::http {

ZipStream::ZipStream(Write write) : write_(std::move(write)), a_(archive_write_new()) {
  archive_write_set_format_zip(a_);
  archive_write_zip_set_compression_store(a_);
  // No blocking: every piece is handed on as it is made.
  archive_write_set_bytes_per_block(a_, 0);
  archive_write_open2(a_, this, nullptr, &ZipStream::OnWrite, nullptr, nullptr);
}

ZipStream::~ZipStream() {
  if (a_) archive_write_free(a_);
}

long ZipStream::OnWrite(struct archive*, void* self, const void* data, std::size_t size) {
  auto* z = static_cast<ZipStream*>(self);
  if (!z->write_(static_cast<const char*>(data), size)) {
    z->reader_gone_ = true;
    return -1;
  }
  return static_cast<long>(size);
}

Result<void> ZipStream::Failed(const std::string& what) {
  if (reader_gone_) return Fail(Code::kUnavailable, "the download was closed by the client");
  const char* why = archive_error_string(a_);
  return Fail(Code::kInternal, fmt::format("{}: {}", what, why ? why : "unknown error"));
}

Result<void> ZipStream::AddFile(const std::string& name, const std::filesystem::path& file) {
  std::ifstream in(file, std::ios::binary);
  struct stat st {};
  if (!in || ::stat(file.c_str(), &st) != 0) return Fail(Code::kInternal, fmt::format("cannot read {}", file.string()));
  struct archive_entry* e = archive_entry_new();
  archive_entry_set_pathname(e, name.c_str());
  archive_entry_set_filetype(e, AE_IFREG);
  archive_entry_set_perm(e, 0644);
  archive_entry_set_size(e, static_cast<la_int64_t>(st.st_size));
  archive_entry_set_mtime(e, st.st_mtime, 0);
  const int header = archive_write_header(a_, e);
  archive_entry_free(e);
  if (header != ARCHIVE_OK) return Failed("cannot add " + name);
  std::vector<char> buf(256 * 1024);
  while (in) {
    in.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    const auto n = in.gcount();
    if (n <= 0) break;
    if (archive_write_data(a_, buf.data(), static_cast<std::size_t>(n)) != n) return Failed("cannot write " + name);
  }
  if (in.bad()) return Fail(Code::kInternal, fmt::format("cannot read {}", file.string()));
  if (archive_write_finish_entry(a_) != ARCHIVE_OK) return Failed("cannot finish " + name);
  return {};
}

Result<void> ZipStream::Finish() {
  if (archive_write_close(a_) != ARCHIVE_OK) return Failed("cannot finish the archive");
  return {};
}

}  // namespace pb::http
