#pragma once
// Routing: which project, subject and session an arriving study is filed under, decided from a
// few header attributes. Pure logic: no DCMTK; the caller supplies the attribute values through
// a lookup function, so this can be tested without DICOM files.
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "core/result.h"

namespace re2 {
class RE2;
}

namespace pb {

struct RoutingRule {
  uint32_t tag = 0;                       // (gggg,eeee) as 0xGGGGEEEE
  std::string pattern;                    // the regex as written
  std::shared_ptr<const re2::RE2> regex;  // compiled (RE2: linear time, no exceptions)
  int group = 1;
  int line = 0;
};

struct RoutingRules {  // each: first matching rule wins
  std::vector<RoutingRule> project, subject, session;
  bool empty() const { return project.empty() && subject.empty() && session.empty(); }
};

// Rules one per line: "(gggg,eeee):regex[:group]", e.g. "(0008,1030):^Study-(\d+)" or
// "(0010,0020):^([A-Z]+)-(\d+):2". Blank lines and lines starting with '#' are ignored; the
// line's surrounding spaces/tabs/'\r' are trimmed (a regex that must end with a space can say
// "[ ]" or "\x20"). Hex digits of the tag in either case; spaces between the tag and the ':'
// are allowed, everything after the ':' is the regex (spaces included).
//  - A trailing ":<digits>" is always the group: "(0008,1030):a:b:2" is regex "a:b", group 2.
//    So a regex that must end with ":5" cannot be written as such; write "[:]5" instead.
//  - The group defaults to 1, so a regex without a capturing group needs an explicit ":0"
//    (group 0 is the whole match).
//  - The regex is RE2's syntax (Perl-like: \d, \w, \s, classes, (?i), non-greedy ?), matched
//    in time linear in the value, so untrusted header values cannot make it backtrack; it has
//    no back-references (\1) or look-arounds, and they are refused here.
// Errors: Fail(kInvalidArgument, "line N: <reason>", field) with `field` as passed (e.g.
// "routing.subject"): bad tag, missing ':', empty regex, invalid regex (with RE2's
// explanation), group out of range ("group 2 but the regex has 1 capturing group").
[[nodiscard]] Result<std::vector<RoutingRule>> ParseRoutingRules(std::string_view text, std::string_view field);

// Turns a value into a label: ASCII letters, digits, '_' and '-' are kept; every run of other
// characters (spaces, '^', each byte of a UTF-8 character, ...) becomes one '_'; leading and
// trailing '_' are trimmed; at most 64 characters (cut, then trailing '_' trimmed again, so the
// result never ends with '_'). May return "" (then a rule does not count as a match).
// "Müller^Hans" -> "M_ller_Hans".
std::string CleanLabel(std::string_view value);

// UTF-8 value of the attribute, nullopt if absent.
using AttributeLookup = std::function<std::optional<std::string>(uint32_t tag)>;

enum class LabelSource { kNone, kReceiverRule, kSiteRule, kComment, kReceiverDefault, kDefaultRule, kUnassigned };

struct Labels {
  std::string project, subject, session;
  LabelSource project_source = LabelSource::kNone, subject_source = LabelSource::kNone,
              session_source = LabelSource::kNone;
  // The attribute each label came from (0 if none).
  uint32_t project_tag = 0, subject_tag = 0, session_tag = 0;
  // For a label a rule gave: the rule's line in its text (RoutingRule::line), else 0.
  int project_line = 0, subject_line = 0, session_line = 0;
};

constexpr const char* kUnassignedProject = "Unassigned";

// For each of the three labels independently: the receiver's rules, then the site-wide rules
// (either may be null), then the defaults:
//   1. "Project: X Subject: Y Session: Z" (keys case-insensitive, each key optional, in any
//      order; a key starts the comment or follows a space, tab, newline, ',' or ';'; the value
//      runs to the next space, tab, newline, ',' or ';', so it is one word) in Patient Comments
//      (0010,4000), then Study Comments (0032,4000);
//   2. (project only) the receiver's default project, if non-empty (tag 0);
//   3. Study Description (0008,1030) -> project, Patient Name (0010,0010) -> subject,
//      Patient ID (0010,0020) -> session;
//   4. Accession Number (0008,0050) -> project.
// A project nothing gives is kUnassignedProject (source kUnassigned, tag 0). Subject/session
// nothing gives stay "" (kNone, tag 0).
// Every value goes through CleanLabel; a value that cleans to "" does not count (the next rule
// is tried). A rule's value is its group's text; a group that did not take part is "".
// Matching is an unanchored search on the value cut to its first 1024 bytes (RE2: linear in
// that length, nothing thrown). Exceptions from `get` propagate. `get` is called at most
// once per tag.
Labels Route(const RoutingRules* receiver, const RoutingRules* site, std::string_view default_project,
             const AttributeLookup& get);

// Tags the default rules read (so a caller can parse just these from a header), in the order
// above: (0010,4000), (0032,4000), (0008,1030), (0010,0010), (0010,0020), (0008,0050).
const std::vector<uint32_t>& DefaultRoutingTags();

}  // namespace pb
