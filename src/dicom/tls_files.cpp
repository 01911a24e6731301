#include "dicom/tls_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <fmt/format.h>

namespace pb::dicom {

[[nodiscard]] Result<void> CheckTlsFile(const std::string& path, const std::string& field, bool private_key) {
  struct stat st {};
  if (path.empty()) return Fail(Code::kInvalidArgument, field + " is required when TLS is enabled", field);
  if (::stat(path.c_str(), &st) != 0 || !S_ISREG(st.st_mode) || ::access(path.c_str(), R_OK) != 0) {
    return Fail(Code::kInvalidArgument, fmt::format("{} '{}' cannot be read", field, path), field);
  }
  if (private_key && (st.st_mode & S_IRWXO)) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' is readable by other users (mode {:o}): a private key must not "
                            "be; chmod 600 it",
                            field, path, st.st_mode & 0777),
                field);
  }
  return {};
}

}  // namespace pb::dicom
