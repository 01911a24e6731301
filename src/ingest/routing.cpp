#include "ingest/routing.h"

#include <fmt/format.h>
#include <re2/re2.h>

#include <algorithm>
#include <climits>
#include <map>
#include <vector>

namespace pb {

namespace {

constexpr uint32_t kPatientComments = 0x00104000;
constexpr uint32_t kStudyComments = 0x00324000;
constexpr uint32_t kStudyDescription = 0x00081030;
constexpr uint32_t kPatientName = 0x00100010;
constexpr uint32_t kPatientId = 0x00100020;
constexpr uint32_t kAccessionNumber = 0x00080050;

// Header values come from the network: RE2 matches in linear time, and the value is cut to
// this length besides.
constexpr size_t kMaxMatchLength = 1024;
constexpr size_t kMaxLabelLength = 64;

std::string_view TrimView(std::string_view s) {
  auto blank = [](char c) { return c == ' ' || c == '\t' || c == '\r'; };
  while (!s.empty() && blank(s.front())) s.remove_prefix(1);
  while (!s.empty() && blank(s.back())) s.remove_suffix(1);
  return s;
}

bool IsHex(char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F'); }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  return c - 'A' + 10;
}

// "(gggg,eeee)" at the start of `s`; false if it is not exactly that.
bool ParseTag(std::string_view s, uint32_t* tag) {
  if (s.size() < 11 || s[0] != '(' || s[5] != ',' || s[10] != ')') return false;
  uint32_t value = 0;
  for (size_t i : {1, 2, 3, 4, 6, 7, 8, 9}) {
    if (!IsHex(s[i])) return false;
    value = (value << 4) | static_cast<uint32_t>(HexValue(s[i]));
  }
  *tag = value;
  return true;
}

// What to quote when the tag is bad: up to the first ')' or up to the first ':', whichever
// comes first (the regex may hold both).
std::string_view BadTagText(std::string_view line) {
  size_t paren = line.find(')');
  size_t end = std::min(paren == std::string_view::npos ? paren : paren + 1, line.find(':'));
  return line.substr(0, end);
}

bool IsCommentSeparator(char c) { return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == ',' || c == ';'; }

bool StartsWithNoCase(std::string_view s, std::string_view prefix) {
  if (s.size() < prefix.size()) return false;
  for (size_t i = 0; i < prefix.size(); ++i) {
    char a = s[i];
    if (a >= 'A' && a <= 'Z') a = static_cast<char>(a - 'A' + 'a');
    if (a != prefix[i]) return false;
  }
  return true;
}

bool IsCommentKey(std::string_view word) {
  for (std::string_view key : {"project", "subject", "session"}) {
    if (word.size() == key.size() && StartsWithNoCase(word, key)) return true;
  }
  return false;
}

// The cleaned value of `key` ("project", "subject", "session"; lower case) in a comment such as
// "Project: P1, Subject: S1; Session: E1", or "" if none. The first occurrence that gives a
// non-empty label wins.
std::string CommentValue(std::string_view comment, std::string_view key) {
  for (size_t i = 0; i < comment.size(); ++i) {
    if (i > 0 && !IsCommentSeparator(comment[i - 1])) continue;
    if (!StartsWithNoCase(comment.substr(i), key)) continue;
    size_t j = i + key.size();
    while (j < comment.size() && (comment[j] == ' ' || comment[j] == '\t')) ++j;
    if (j >= comment.size() || comment[j] != ':') continue;
    ++j;
    while (j < comment.size() && (comment[j] == ' ' || comment[j] == '\t')) ++j;
    size_t end = j;
    while (end < comment.size() && !IsCommentSeparator(comment[end])) ++end;
    std::string_view value = comment.substr(j, end - j);
    // "Project: Subject: S1": the project is missing, not "Subject".
    if (!value.empty() && value.back() == ':' && IsCommentKey(value.substr(0, value.size() - 1))) {
      continue;
    }
    std::string label = CleanLabel(value);
    if (!label.empty()) return label;
  }
  return {};
}

// Looks each tag up once: the same attribute is read by several rules and defaults.
class AttributeCache {
 public:
  explicit AttributeCache(const AttributeLookup& get) : get_(get) {}
  const std::optional<std::string>& Get(uint32_t tag) {
    auto it = values_.find(tag);
    if (it == values_.end()) it = values_.emplace(tag, get_ ? get_(tag) : std::nullopt).first;
    return it->second;
  }

 private:
  const AttributeLookup& get_;
  std::map<uint32_t, std::optional<std::string>> values_;
};

std::string MatchRule(const RoutingRule& rule, const std::string& value) {
  if (!rule.regex) return {};
  const re2::StringPiece cut(value.data(), std::min(value.size(), kMaxMatchLength));
  const size_t group = static_cast<size_t>(rule.group);
  std::vector<re2::StringPiece> groups(group + 1);
  if (!rule.regex->Match(cut, 0, cut.size(), re2::RE2::UNANCHORED, groups.data(), static_cast<int>(groups.size()))) {
    return {};
  }
  if (groups[group].data() == nullptr) return {};  // the group took no part in the match
  return CleanLabel(std::string(groups[group].data(), groups[group].size()));
}

struct Slot {
  std::string* label;
  LabelSource* source;
  uint32_t* tag;
  int* line;
  bool Set(std::string value, LabelSource from, uint32_t attribute, int rule_line = 0) {
    if (value.empty()) return false;
    *label = std::move(value);
    *source = from;
    *tag = attribute;
    *line = rule_line;
    return true;
  }
};

bool ApplyRules(const std::vector<RoutingRule>& rules, LabelSource from, AttributeCache& cache, Slot slot) {
  for (const RoutingRule& rule : rules) {
    const std::optional<std::string>& value = cache.Get(rule.tag);
    if (!value) continue;
    if (slot.Set(MatchRule(rule, *value), from, rule.tag, rule.line)) return true;
  }
  return false;
}

bool ApplyComments(std::string_view key, AttributeCache& cache, Slot slot) {
  for (uint32_t tag : {kPatientComments, kStudyComments}) {
    const std::optional<std::string>& value = cache.Get(tag);
    if (value && slot.Set(CommentValue(*value, key), LabelSource::kComment, tag)) return true;
  }
  return false;
}

bool ApplyAttribute(uint32_t tag, AttributeCache& cache, Slot slot) {
  const std::optional<std::string>& value = cache.Get(tag);
  return value && slot.Set(CleanLabel(*value), LabelSource::kDefaultRule, tag);
}

}  // namespace

[[nodiscard]] Result<std::vector<RoutingRule>> ParseRoutingRules(std::string_view text, std::string_view field) {
  std::vector<RoutingRule> rules;
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
      return Fail(Code::kInvalidArgument, fmt::format("line {}: {}", line_no, reason), std::string(field));
    };

    RoutingRule rule;
    rule.line = line_no;
    if (!ParseTag(line, &rule.tag)) {
      return fail(
          fmt::format("bad tag '{}'; write the tag as (gggg,eeee) in hexadecimal, "
                      "e.g. (0010,0020)",
                      BadTagText(line)));
    }
    std::string_view rest = TrimView(line.substr(11));  // "(0010,0010) :..." is forgiven
    if (rest.empty() || rest.front() != ':') {
      return fail(fmt::format("missing ':' after the tag {}; write (gggg,eeee):regex[:group]", line.substr(0, 11)));
    }
    rest.remove_prefix(1);

    // A trailing ":<digits>" is always the group (see the header).
    size_t colon = rest.rfind(':');
    if (colon != std::string_view::npos && colon + 1 < rest.size()) {
      std::string_view digits = rest.substr(colon + 1);
      bool all_digits = true;
      long long value = 0;
      for (char c : digits) {
        if (c < '0' || c > '9') {
          all_digits = false;
          break;
        }
        value = std::min<long long>(value * 10 + (c - '0'), INT_MAX);  // saturate, stay in range
      }
      if (all_digits) {
        rule.group = static_cast<int>(value);
        rest = rest.substr(0, colon);
      }
    }
    rule.pattern = std::string(rest);
    if (rule.pattern.empty()) return fail("the regex is empty");
    re2::RE2::Options options;
    options.set_log_errors(false);  // the error goes back to whoever wrote the rule
    auto compiled = std::make_shared<const re2::RE2>(rule.pattern, options);
    if (!compiled->ok()) {
      std::string why = compiled->error();
      if (compiled->error_code() == re2::RE2::ErrorBadEscape && compiled->error_arg().size() == 2 &&
          compiled->error_arg()[1] >= '1' && compiled->error_arg()[1] <= '9') {
        why = "back-references such as \\1 are not supported";
      }
      return fail(fmt::format("invalid regex '{}': {}", rule.pattern, why));
    }
    rule.regex = std::move(compiled);
    const unsigned groups = static_cast<unsigned>(rule.regex->NumberOfCapturingGroups());
    if (static_cast<unsigned>(rule.group) > groups) {
      std::string message =
          fmt::format("group {} but the regex has {} capturing group{}", rule.group, groups, groups == 1 ? "" : "s");
      if (groups == 0) {
        message +=
            " (put the part to keep in parentheses, or end the rule with ':0' for the "
            "whole match)";
      }
      return fail(message);
    }
    rules.push_back(std::move(rule));
  }
  return rules;
}

std::string CleanLabel(std::string_view value) {
  std::string out;
  bool in_run = false;
  for (char c : value) {
    bool keep = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '-';
    if (out.empty() && (!keep || c == '_')) continue;  // leading '_' would be trimmed anyway
    if (keep) {
      out += c;
      in_run = false;
    } else if (!in_run) {
      out += '_';
      in_run = true;
    }
    if (out.size() > kMaxLabelLength) break;  // a long value costs no more than a short one
  }
  if (out.size() > kMaxLabelLength) out.resize(kMaxLabelLength);
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

Labels Route(const RoutingRules* receiver, const RoutingRules* site, std::string_view default_project,
             const AttributeLookup& get) {
  Labels labels;
  AttributeCache cache(get);
  Slot project{&labels.project, &labels.project_source, &labels.project_tag, &labels.project_line};
  Slot subject{&labels.subject, &labels.subject_source, &labels.subject_tag, &labels.subject_line};
  Slot session{&labels.session, &labels.session_source, &labels.session_tag, &labels.session_line};

  auto configured = [&](Slot slot, std::vector<RoutingRule> RoutingRules::*which) {
    return (receiver && ApplyRules(receiver->*which, LabelSource::kReceiverRule, cache, slot)) ||
           (site && ApplyRules(site->*which, LabelSource::kSiteRule, cache, slot));
  };

  if (!configured(project, &RoutingRules::project) && !ApplyComments("project", cache, project) &&
      !project.Set(CleanLabel(default_project), LabelSource::kReceiverDefault, 0) &&
      !ApplyAttribute(kStudyDescription, cache, project) && !ApplyAttribute(kAccessionNumber, cache, project)) {
    project.Set(kUnassignedProject, LabelSource::kUnassigned, 0);
  }
  if (!configured(subject, &RoutingRules::subject) && !ApplyComments("subject", cache, subject)) {
    ApplyAttribute(kPatientName, cache, subject);
  }
  if (!configured(session, &RoutingRules::session) && !ApplyComments("session", cache, session)) {
    ApplyAttribute(kPatientId, cache, session);
  }
  return labels;
}

const std::vector<uint32_t>& DefaultRoutingTags() {
  static const std::vector<uint32_t> kTags{kPatientComments, kStudyComments, kStudyDescription,
                                           kPatientName,     kPatientId,     kAccessionNumber};
  return kTags;
}

}  // namespace pb
