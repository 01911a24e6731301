#include "receivers/whitelist.h"

#include <arpa/inet.h>
#include <fmt/format.h>

#include <cctype>
#include <cstring>

#include "core/validate.h"

namespace pb {

namespace {

constexpr const char* kField = "whitelist";

struct ParsedBlock {
  std::array<uint8_t, 16> bytes{};
  int prefix = 128;  // over the 128 bits, IPv4 included (+96)
};

// What a token turned out to be: an address (block), certainly not one (then it may be an AE
// title), or something shaped like an address that is broken (then it must not become an AE
// title: "300.1.1.1" as an AE title would silently never match).
enum class TokenKind { kAddress, kNotAddress, kBroken };

struct TokenResult {
  TokenKind kind = TokenKind::kNotAddress;
  ParsedBlock block;
  std::string reason;  // for kBroken
};

std::string_view TrimView(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool Ipv4Shaped(std::string_view s) {
  if (s.empty() || s.find('.') == std::string_view::npos) return false;
  for (char c : s) {
    if (!(c >= '0' && c <= '9') && c != '.') return false;
  }
  return true;
}

bool Ipv6Shaped(std::string_view s) {
  size_t colons = 0;
  for (char c : s) {
    if (c == ':') {
      ++colons;
    } else if (!std::isxdigit(static_cast<unsigned char>(c)) && c != '.') {
      return false;
    }
  }
  return colons >= 2;
}

bool ParseV4(std::string_view s, ParsedBlock* out) {
  in_addr a{};
  if (inet_pton(AF_INET, std::string(s).c_str(), &a) != 1) return false;
  out->bytes = {};
  out->bytes[10] = 0xff;
  out->bytes[11] = 0xff;
  std::memcpy(out->bytes.data() + 12, &a, 4);
  out->prefix = 128;
  return true;
}

bool ParseV6(std::string_view s, ParsedBlock* out) {
  in6_addr a{};
  if (inet_pton(AF_INET6, std::string(s).c_str(), &a) != 1) return false;
  std::memcpy(out->bytes.data(), &a, 16);
  out->prefix = 128;
  return true;
}

void Mask(std::array<uint8_t, 16>& bytes, int prefix) {
  for (int i = 0; i < 16; ++i) {
    int keep = prefix - i * 8;  // bits of this byte that belong to the network part
    if (keep >= 8) continue;
    bytes[i] &= keep <= 0 ? 0 : static_cast<uint8_t>(0xff << (8 - keep));
  }
}

bool InBlock(const std::array<uint8_t, 16>& addr, const std::array<uint8_t, 16>& net, int prefix) {
  std::array<uint8_t, 16> masked = addr;
  Mask(masked, prefix);
  return masked == net;
}

std::string FormatBlock(const ParsedBlock& b, bool v4) {
  char buf[INET6_ADDRSTRLEN] = {};
  if (v4) {
    inet_ntop(AF_INET, b.bytes.data() + 12, buf, sizeof buf);
    return fmt::format("{}/{}", buf, b.prefix - 96);
  }
  inet_ntop(AF_INET6, b.bytes.data(), buf, sizeof buf);
  return fmt::format("{}/{}", buf, b.prefix);
}

TokenResult ParseAddressToken(std::string_view token, bool after_at = false) {
  TokenResult r;
  size_t slash = token.find('/');
  std::string_view host = token.substr(0, slash);
  bool bracketed = host.size() >= 2 && host.front() == '[' && host.back() == ']';
  if (bracketed) host = host.substr(1, host.size() - 2);

  bool v4 = false;
  if (!bracketed && ParseV4(host, &r.block)) {
    v4 = true;
  } else if (!ParseV6(host, &r.block)) {
    if (bracketed && Ipv4Shaped(host)) {
      r.kind = TokenKind::kBroken;
      r.reason = fmt::format("'{}': brackets are only for IPv6 addresses", token);
    } else if (bracketed && host.find(':') != std::string_view::npos) {
      r.kind = TokenKind::kBroken;
      r.reason = fmt::format("'{}' is not an IPv6 address", token);
    } else if (Ipv6Shaped(host) || Ipv4Shaped(host)) {
      r.kind = TokenKind::kBroken;
      r.reason = fmt::format("'{}' is not an IP address{}", token, after_at ? "" : " or AE title");
    }
    return r;  // kNotAddress unless broken
  }

  int max_prefix = v4 ? 32 : 128;
  int prefix = max_prefix;
  if (slash != std::string_view::npos) {
    std::string_view digits = token.substr(slash + 1);
    bool ok = !digits.empty() && digits.size() <= 3;
    int value = 0;
    for (char c : ok ? digits : std::string_view{}) {  // at most 3 digits: no overflow
      if (c < '0' || c > '9') {
        ok = false;
        break;
      }
      value = value * 10 + (c - '0');
    }
    if (!ok || value > max_prefix) {
      r.kind = TokenKind::kBroken;
      r.reason = fmt::format("'{}': prefix length must be 0 to {}", token, max_prefix);
      return r;
    }
    prefix = value;
  }
  r.block.prefix = v4 ? prefix + 96 : prefix;
  ParsedBlock network = r.block;
  Mask(network.bytes, network.prefix);
  if (network.bytes != r.block.bytes) {
    r.kind = TokenKind::kBroken;
    r.reason = fmt::format("'{}' has host bits set; the block is {}", token, FormatBlock(network, v4));
    return r;
  }
  r.kind = TokenKind::kAddress;
  return r;
}

// ValidateAeTitle decides; the reason is worded for a list of entries ("'A\B': an AE title has
// no backslash") rather than for a form field.
[[nodiscard]] Result<std::string> CheckAeTitle(std::string_view ae) {
  auto valid = ValidateAeTitle(ae);
  if (valid) return valid;
  std::string trimmed = Trim(ae);
  std::string reason;
  if (trimmed.size() > 16) {
    reason = fmt::format("an AE title has at most 16 characters (this one has {})", trimmed.size());
  } else if (trimmed.find('\\') != std::string::npos) {
    reason = "an AE title has no backslash";
  } else {
    reason = "an AE title has no control characters and is plain ASCII";
    for (unsigned char c : trimmed) {
      if (c < 0x20 || c == 0x7f) {
        reason = "an AE title has no control characters (tab, ...)";
        break;
      }
      if (c > 0x7e) {
        reason = "an AE title is plain ASCII (the DICOM default character set)";
        break;
      }
    }
  }
  return Fail(Code::kInvalidArgument, fmt::format("'{}': {}", ae, reason));
}

}  // namespace

Result<Whitelist> Whitelist::Parse(std::string_view text) {
  Whitelist w;
  w.text_ = std::string(text);
  int line_no = 0;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string_view::npos) nl = text.size();
    std::string_view line = TrimView(text.substr(pos, nl - pos));
    pos = nl + 1;
    ++line_no;
    if (line.empty() || line.front() == '#') continue;

    auto fail = [&](const std::string& reason) {
      return Fail(Code::kInvalidArgument, fmt::format("line {}: {}", line_no, reason), kField);
    };

    Entry entry;
    size_t at = line.rfind('@');
    if (at != std::string_view::npos) {
      std::string_view ae = TrimView(line.substr(0, at));
      std::string_view address = TrimView(line.substr(at + 1));
      if (ae.empty()) return fail(fmt::format("'{}': no AE title before '@'", line));
      if (address.empty()) {
        return fail(fmt::format("'{}': no address after '@' (write AE@address)", line));
      }
      TokenResult a = ParseAddressToken(address, /*after_at=*/true);
      if (a.kind == TokenKind::kBroken) return fail(a.reason);
      if (a.kind == TokenKind::kNotAddress) {
        return fail(
            fmt::format("'{}' after '@' is not an IP address or CIDR block (host names are not accepted)", address));
      }
      auto title = CheckAeTitle(ae);
      if (!title) return fail(title.error().message);
      entry.ae = *title;
      entry.has_block = true;
      entry.block.bytes = a.block.bytes;
      entry.block.prefix = a.block.prefix;
    } else {
      TokenResult a = ParseAddressToken(line);
      if (a.kind == TokenKind::kBroken) return fail(a.reason);
      if (a.kind == TokenKind::kAddress) {
        entry.has_block = true;
        entry.block.bytes = a.block.bytes;
        entry.block.prefix = a.block.prefix;
      } else {
        // "10.0.0.1 # lab" is a valid 14-character AE title; taking it as one would silently
        // drop the address the author meant.
        size_t space = line.find_first_of(" \t");
        if (space != std::string_view::npos &&
            ParseAddressToken(line.substr(0, space)).kind != TokenKind::kNotAddress) {
          return fail(fmt::format("'{}': one entry per line; a comment goes on its own line starting with '#'", line));
        }
        auto title = CheckAeTitle(line);
        if (!title) return fail(title.error().message);
        entry.ae = *title;
      }
    }
    w.entries_.push_back(std::move(entry));
  }
  return w;
}

bool Whitelist::Allows(std::string_view calling_ae, std::string_view peer_address) const {
  std::string ae = Trim(calling_ae);
  std::string_view peer = TrimView(peer_address);
  if (peer.size() >= 2 && peer.front() == '[' && peer.back() == ']') {
    peer = peer.substr(1, peer.size() - 2);
  }
  ParsedBlock addr;
  bool peer_ok = ParseV4(peer, &addr) || ParseV6(peer, &addr);
  for (const Entry& e : entries_) {
    if (!e.ae.empty() && e.ae != ae) continue;
    if (e.has_block && (!peer_ok || !InBlock(addr.bytes, e.block.bytes, e.block.prefix))) {
      continue;
    }
    return true;
  }
  return false;
}

}  // namespace pb
