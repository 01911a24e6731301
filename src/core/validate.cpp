#include "core/validate.h"

#include <arpa/inet.h>

#include <fmt/format.h>

namespace pb {

namespace {

// The length of the well-formed UTF-8 sequence at s[i], or 0 when the bytes there are not one.
size_t SequenceAt(std::string_view s, size_t i) {
  auto in = [](unsigned char c, unsigned char lo, unsigned char hi) { return c >= lo && c <= hi; };
  const unsigned char c = s[i];
  size_t n = 0;
  unsigned char lo = 0x80, hi = 0xBF;  // the range of the second byte
  if (c < 0x80) return 1;
  if (in(c, 0xC2, 0xDF))
    n = 1;
  else if (c == 0xE0)
    n = 2, lo = 0xA0;
  else if (in(c, 0xE1, 0xEC) || in(c, 0xEE, 0xEF))
    n = 2;
  else if (c == 0xED)
    n = 2, hi = 0x9F;
  else if (c == 0xF0)
    n = 3, lo = 0x90;
  else if (in(c, 0xF1, 0xF3))
    n = 3;
  else if (c == 0xF4)
    n = 3, hi = 0x8F;
  else
    return 0;
  if (i + n >= s.size()) return 0;
  for (size_t k = 1; k <= n; ++k) {
    const unsigned char b = s[i + k];
    if (k == 1 ? !in(b, lo, hi) : !in(b, 0x80, 0xBF)) return 0;
  }
  return n + 1;
}

}  // namespace

bool IsValidUtf8(std::string_view s) {
  for (size_t i = 0; i < s.size();) {
    const size_t n = SequenceAt(s, i);
    if (n == 0) return false;
    i += n;
  }
  return true;
}

std::string ToValidUtf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    const size_t n = SequenceAt(s, i);
    if (n == 0) {
      out += "\xEF\xBF\xBD";  // U+FFFD REPLACEMENT CHARACTER, for each byte that is not UTF-8
      ++i;
    } else {
      out.append(s.substr(i, n));
      i += n;
    }
  }
  return out;
}

std::string Trim(std::string_view s) {
  size_t b = 0, e = s.size();
  while (b < e && (s[b] == ' ')) ++b;
  while (e > b && (s[e - 1] == ' ')) --e;
  return std::string(s.substr(b, e - b));
}

[[nodiscard]] Result<std::string> ValidateAeTitle(std::string_view value, std::string_view field) {
  std::string ae = Trim(value);
  if (ae.empty()) {
    return Fail(Code::kInvalidArgument, fmt::format("{} must not be empty", field), std::string(field));
  }
  if (ae.size() > 16) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' is {} characters long; at most 16 are allowed", field, ae, ae.size()),
                std::string(field));
  }
  for (unsigned char c : ae) {
    if (c == '\\') {
      return Fail(Code::kInvalidArgument, fmt::format("{} must not contain a backslash", field), std::string(field));
    }
    if (c < 0x20 || c == 0x7f) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} must not contain control characters (tab, newline, ...)", field), std::string(field));
    }
    if (c > 0x7e) {
      return Fail(Code::kInvalidArgument,
                  fmt::format("{} must be plain ASCII (the DICOM default character set)", field), std::string(field));
    }
  }
  return ae;
}

bool IsIpv4Literal(std::string_view host) {
  in_addr a{};
  return inet_pton(AF_INET, std::string(host).c_str(), &a) == 1;
}

bool IsIpv6Literal(std::string_view host) {
  in6_addr a{};
  return inet_pton(AF_INET6, std::string(host).c_str(), &a) == 1;
}

namespace {

bool IsDnsName(std::string_view h) {
  if (h.empty() || h.size() > 253) return false;
  if (h.back() == '.') h.remove_suffix(1);  // a fully qualified name may end with a dot
  size_t label = 0;
  for (size_t i = 0; i <= h.size(); ++i) {
    if (i == h.size() || h[i] == '.') {
      if (label == 0 || label > 63) return false;
      if (h[i - 1] == '-' || h[i - label] == '-') return false;
      label = 0;
      continue;
    }
    char c = h[i];
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_';
    if (!ok) return false;
    ++label;
  }
  return true;
}

}  // namespace

[[nodiscard]] Result<std::string> ValidateHost(std::string_view value, std::string_view field) {
  std::string h = Trim(value);
  std::string f(field);
  if (h.empty()) return Fail(Code::kInvalidArgument, fmt::format("{} must not be empty", field), f);
  if (h.find("://") != std::string::npos) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' looks like a URL; give the bare host name or IP address "
                            "(e.g. pacs.hospital.org or 10.0.0.5), without scheme or path",
                            field, h),
                f);
  }
  if (h.front() == '[' && h.back() == ']') {
    std::string inner = h.substr(1, h.size() - 2);
    if (IsIpv6Literal(inner)) return inner;
    return Fail(Code::kInvalidArgument, fmt::format("{} '{}' is not a valid IPv6 address", field, h), f);
  }
  if (IsIpv6Literal(h) || IsIpv4Literal(h)) return h;
  if (h.find('/') != std::string::npos) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' contains a path; give the bare host name or IP address", field, h), f);
  }
  if (h.find(':') != std::string::npos) {
    return Fail(Code::kInvalidArgument,
                fmt::format("{} '{}' contains a ':'; give the port in the port field and the bare "
                            "host here (IPv6 addresses are accepted with or without brackets)",
                            field, h),
                f);
  }
  if (!IsDnsName(h)) {
    return Fail(Code::kInvalidArgument, fmt::format("{} '{}' is neither an IP address nor a valid DNS name", field, h),
                f);
  }
  return h;
}

[[nodiscard]] Result<uint16_t> ValidatePort(int64_t value, std::string_view field) {
  if (value < 1 || value > 65535) {
    return Fail(Code::kInvalidArgument, fmt::format("{} must be between 1 and 65535 (got {})", field, value),
                std::string(field));
  }
  return static_cast<uint16_t>(value);
}

bool IsValidUid(std::string_view uid) {
  if (uid.empty() || uid.size() > 64) return false;
  size_t comp = 0;
  for (size_t i = 0; i <= uid.size(); ++i) {
    if (i == uid.size() || uid[i] == '.') {
      if (comp == 0) return false;
      if (comp > 1 && uid[i - comp] == '0') return false;
      comp = 0;
      continue;
    }
    if (uid[i] < '0' || uid[i] > '9') return false;
    ++comp;
  }
  return true;
}

std::string JoinHostPort(std::string_view host, uint16_t port) {
  if (IsIpv6Literal(host)) return fmt::format("[{}]:{}", host, port);
  return fmt::format("{}:{}", host, port);
}

}  // namespace pb
