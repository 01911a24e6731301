#include "dicomweb/multipart.h"

#include <algorithm>
#include <cctype>
#include <cstring>

#include <fmt/format.h>

#include "core/text.h"

namespace pb::dicomweb {
namespace {

constexpr size_t kMaxPadding = 1024;  // transport padding after a delimiter (RFC 2046: LWSP)
constexpr size_t kSliceBytes = 4096;  // bytes outside a part's data copied to the buffer at once

// RFC 2046 bchars: DIGIT / ALPHA / "'()+_,-./:=?" and space (not last). RFC 2046 allows 70
// characters at most; longer ones are taken (Orthanc 1.10's DICOMweb plugin sends 73), up to
// kMaxBoundary.
constexpr size_t kMaxBoundary = 200;
bool ValidBoundary(std::string_view b) {
  if (b.empty() || b.size() > kMaxBoundary || b.back() == ' ') return false;
  return std::all_of(b.begin(), b.end(), [](unsigned char c) {
    return std::isalnum(c) || std::string_view("'()+_,-./:=? ").find(static_cast<char>(c)) != std::string_view::npos;
  });
}

// glibc's memmem skips ahead on the delimiter's bytes; std::string::find stops at every '\r'
// of pixel data (one byte in 256 of noise) to compare the rest.
size_t Find(std::string_view hay, std::string_view needle) {
  const void* at = ::memmem(hay.data(), hay.size(), needle.data(), needle.size());
  return at == nullptr ? std::string_view::npos : static_cast<size_t>(static_cast<const char*>(at) - hay.data());
}

}  // namespace

[[nodiscard]] Result<std::string> MultipartBoundary(std::string_view content_type) {
  std::string_view rest = content_type;
  size_t semi = rest.find(';');
  std::string type = AsciiLower(TrimBlanks(rest.substr(0, semi)));
  if (type.rfind("multipart/", 0) != 0) {
    return pb::Fail(Code::kInvalidArgument,
                    fmt::format("the Content-Type is '{}', not a multipart type", TrimBlanks(content_type)));
  }
  while (semi != std::string_view::npos) {
    rest.remove_prefix(semi + 1);
    // A quoted value may hold ';': find the end of this parameter with quotes in mind.
    size_t end = 0;
    bool quoted = false;
    for (; end < rest.size(); ++end) {
      if (rest[end] == '"')
        quoted = !quoted;
      else if (rest[end] == '\\' && quoted)
        ++end;
      else if (rest[end] == ';' && !quoted)
        break;
    }
    std::string_view param = rest.substr(0, end);
    semi = end < rest.size() ? end : std::string_view::npos;
    size_t eq = param.find('=');
    if (eq == std::string_view::npos || AsciiLower(TrimBlanks(param.substr(0, eq))) != "boundary") continue;
    std::string_view value = TrimBlanks(param.substr(eq + 1));
    std::string boundary;
    if (value.size() >= 2 && value.front() == '"' && value.back() == '"') {
      value = value.substr(1, value.size() - 2);
      for (size_t i = 0; i < value.size(); ++i) {
        if (value[i] == '\\' && i + 1 < value.size()) ++i;
        boundary += value[i];
      }
    } else {
      boundary = std::string(value);
    }
    if (!ValidBoundary(boundary)) {
      return pb::Fail(Code::kInvalidArgument,
                      fmt::format("the multipart boundary '{}' is not valid (1 to {} letters, digits or '()+_,-./:=? "
                                  "characters)",
                                  boundary, kMaxBoundary));
    }
    return boundary;
  }
  return pb::Fail(Code::kInvalidArgument,
                  fmt::format("the Content-Type '{}' names no boundary", TrimBlanks(content_type)));
}

MultipartParser::MultipartParser(const std::string& boundary, Handlers handlers)
    : dash_boundary_("--" + boundary), delimiter_("\r\n--" + boundary), handlers_(std::move(handlers)) {
  // A body may open with its first delimiter: as if a line break came before it.
  buffer_ = "\r\n";
}

Result<void> MultipartParser::Fail(std::string message) {
  state_ = State::kFailed;
  error_ = std::move(message);
  return pb::Fail(Code::kInvalidArgument, error_);
}

Result<void> MultipartParser::Feed(std::string_view bytes) {
  if (state_ == State::kFailed) return pb::Fail(Code::kInvalidArgument, error_);
  const size_t keep = delimiter_.size() - 1;
  while (!bytes.empty() && state_ != State::kEpilogue) {
    // A part of known length: its data is handed on from the caller's chunk, unsearched.
    if (state_ == State::kCounted && buffer_.empty()) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, bytes.size()));
      if (auto r = EmitCounted(bytes.substr(0, n)); !r) return Failed(r);
      bytes.remove_prefix(n);
      continue;
    }
    // Inside a part's data with at most a possible delimiter start kept, the caller's bytes are
    // handed on without being copied, up to the next delimiter.
    if (state_ == State::kBody && buffer_.size() <= keep && bytes.size() > keep) {
      std::string junction = buffer_;
      junction.append(bytes.data(), keep);
      if (Find(junction, delimiter_) == std::string::npos) {
        const size_t at = Find(bytes, delimiter_);
        const size_t emit = at == std::string_view::npos ? bytes.size() - keep : at;
        if (handlers_.on_data) {
          if (!buffer_.empty()) {
            if (auto r = handlers_.on_data(buffer_); !r) return Failed(r);
          }
          if (emit > 0) {
            if (auto r = handlers_.on_data(bytes.substr(0, emit)); !r) return Failed(r);
          }
        }
        buffer_.clear();
        bytes.remove_prefix(emit);
        if (at == std::string_view::npos) {
          buffer_.assign(bytes.data(), bytes.size());  // a possible delimiter start
          return {};
        }
      }
    }
    // Delimiters, headers and the ends go through the buffer a slice at a time, so that only
    // those few bytes are copied, never the rest of the chunk.
    const size_t take = std::min(bytes.size(), kSliceBytes);
    buffer_.append(bytes.data(), take);
    bytes.remove_prefix(take);
    bool progressed = true;
    while (progressed) {
      progressed = false;
      if (auto r = Step(progressed); !r) return Failed(r);
    }
  }
  return {};
}

Result<void> MultipartParser::Failed(const Result<void>& r) {
  if (state_ != State::kFailed) {
    state_ = State::kFailed;
    error_ = r.error().message;
  }
  return r;
}

Result<void> MultipartParser::Step(bool& progressed) {
  switch (state_) {
    case State::kPreamble: {
      size_t at = Find(buffer_, delimiter_);
      if (at == std::string::npos) {
        // Keep only what could be the start of a delimiter.
        if (buffer_.size() >= delimiter_.size()) buffer_.erase(0, buffer_.size() - (delimiter_.size() - 1));
        return {};
      }
      buffer_.erase(0, at + delimiter_.size());
      state_ = State::kAfterDelimiter;
      progressed = true;
      return {};
    }
    case State::kAfterDelimiter: {
      if (buffer_.size() < 2) return {};
      if (buffer_.compare(0, 2, "--") == 0) {
        buffer_.clear();
        state_ = State::kEpilogue;
        progressed = true;
        return {};
      }
      size_t pad = buffer_.find_first_not_of(" \t");
      if (pad == std::string::npos) {
        if (buffer_.size() > kMaxPadding)
          return Fail(fmt::format("after part {}: endless padding after a boundary", parts_));
        return {};
      }
      if (buffer_.size() < pad + 2) return {};
      if (buffer_.compare(pad, 2, "\r\n") != 0) {
        return Fail(fmt::format("after part {}: the boundary is not followed by a line break", parts_));
      }
      buffer_.erase(0, pad + 2);
      state_ = State::kHeaders;
      progressed = true;
      return {};
    }
    case State::kHeaders: {
      size_t end = buffer_.compare(0, 2, "\r\n") == 0 ? 0 : buffer_.find("\r\n\r\n");
      if (end == std::string::npos) {
        if (buffer_.size() > kMaxHeaderBytes) {
          return Fail(fmt::format("part {}: headers longer than {} bytes", parts_ + 1, kMaxHeaderBytes));
        }
        return {};
      }
      if (end > kMaxHeaderBytes) {
        return Fail(fmt::format("part {}: headers longer than {} bytes", parts_ + 1, kMaxHeaderBytes));
      }
      ++parts_;
      if (auto r = ParseHeaders(std::string_view(buffer_).substr(0, end)); !r) return r;
      buffer_.erase(0, end == 0 ? 2 : end + 4);
      progressed = true;
      return {};
    }
    case State::kCounted: {
      if (buffer_.empty()) return {};
      const size_t n = static_cast<size_t>(std::min<uint64_t>(left_, buffer_.size()));
      if (auto r = EmitCounted(std::string_view(buffer_).substr(0, n)); !r) return r;
      buffer_.erase(0, n);
      progressed = true;
      return {};
    }
    case State::kCountedEnd: {
      const size_t have = std::min(buffer_.size(), delimiter_.size());
      if (buffer_.compare(0, have, delimiter_, 0, have) != 0) {
        return Fail(fmt::format("part {}: its Content-Length ({}) does not end at a boundary", parts_, length_));
      }
      if (have < delimiter_.size()) return {};
      buffer_.erase(0, delimiter_.size());
      if (handlers_.on_part_end) {
        if (auto r = handlers_.on_part_end(); !r) return r;
      }
      state_ = State::kAfterDelimiter;
      progressed = true;
      return {};
    }
    case State::kBody: {
      size_t at = Find(buffer_, delimiter_);
      if (at == std::string::npos) {
        if (buffer_.size() >= delimiter_.size()) {
          size_t emit = buffer_.size() - (delimiter_.size() - 1);
          if (handlers_.on_data) {
            if (auto r = handlers_.on_data(std::string_view(buffer_).substr(0, emit)); !r) return r;
          }
          buffer_.erase(0, emit);
        }
        return {};
      }
      if (at > 0 && handlers_.on_data) {
        if (auto r = handlers_.on_data(std::string_view(buffer_).substr(0, at)); !r) return r;
      }
      buffer_.erase(0, at + delimiter_.size());
      if (handlers_.on_part_end) {
        if (auto r = handlers_.on_part_end(); !r) return r;
      }
      state_ = State::kAfterDelimiter;
      progressed = true;
      return {};
    }
    case State::kEpilogue:
      buffer_.clear();
      return {};
    case State::kFailed:
      return pb::Fail(Code::kInvalidArgument, error_);
  }
  return {};
}

Result<void> MultipartParser::ParseHeaders(std::string_view block) {
  Headers headers;
  std::string last;
  while (!block.empty()) {
    size_t eol = block.find("\r\n");
    std::string_view line = block.substr(0, eol);
    block = eol == std::string_view::npos ? std::string_view() : block.substr(eol + 2);
    if (!line.empty() && (line.front() == ' ' || line.front() == '\t') && !last.empty()) {
      std::string& value = headers[last];  // an obsolete folded line continues the last
      value.push_back(' ');
      value.append(TrimBlanks(line));
      continue;
    }
    size_t colon = line.find(':');
    if (colon == std::string_view::npos || colon == 0) {
      return Fail(fmt::format("part {}: malformed header line (no 'Name: value')", parts_));
    }
    last = AsciiLower(TrimBlanks(line.substr(0, colon)));
    headers[last] = std::string(TrimBlanks(line.substr(colon + 1)));
  }
  // A Content-Length of digits only counts the part's data; any other is left alone (the
  // delimiter is searched for, as without one).
  state_ = State::kBody;
  if (auto it = headers.find("content-length"); it != headers.end()) {
    const std::string& v = it->second;
    if (!v.empty() && v.size() <= 15 &&
        std::all_of(v.begin(), v.end(), [](unsigned char c) { return c >= '0' && c <= '9'; })) {
      length_ = left_ = std::stoull(v);
      state_ = left_ == 0 ? State::kCountedEnd : State::kCounted;
    }
  }
  if (handlers_.on_part) return handlers_.on_part(parts_, headers);
  return {};
}

Result<void> MultipartParser::EmitCounted(std::string_view data) {
  left_ -= data.size();
  if (left_ == 0) state_ = State::kCountedEnd;
  if (!data.empty() && handlers_.on_data) return handlers_.on_data(data);
  return {};
}

Result<void> MultipartParser::Finish() {
  switch (state_) {
    case State::kEpilogue:
      if (parts_ == 0) return Fail("no part: the body holds only its closing boundary");
      return {};
    case State::kFailed:
      return pb::Fail(Code::kInvalidArgument, error_);
    case State::kPreamble:
      return Fail(fmt::format("no part: the body never contains the boundary '{}'", dash_boundary_));
    case State::kHeaders:
      return Fail(fmt::format("part {}: the body ended inside its headers (truncated)", parts_ + 1));
    case State::kBody:
    case State::kCounted:
      return Fail(fmt::format("part {}: the body ended inside its data (truncated)", parts_));
    case State::kCountedEnd:
      return Fail(fmt::format("part {}: the body ended after its data, before its boundary (truncated)", parts_));
    case State::kAfterDelimiter:
      return Fail(fmt::format("the body ended after part {} without the closing boundary (truncated)", parts_));
  }
  return {};
}

}  // namespace pb::dicomweb
