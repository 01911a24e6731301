#include "ingest/routing.h"

#include <gtest/gtest.h>

#include <chrono>
#include <map>

namespace pb {
namespace {

constexpr uint32_t kPatientComments = 0x00104000;
constexpr uint32_t kStudyComments = 0x00324000;
constexpr uint32_t kStudyDescription = 0x00081030;
constexpr uint32_t kPatientName = 0x00100010;
constexpr uint32_t kPatientId = 0x00100020;
constexpr uint32_t kAccessionNumber = 0x00080050;
constexpr uint32_t kInstitutionName = 0x00080080;

std::vector<RoutingRule> MustParse(std::string_view text) {
  auto r = ParseRoutingRules(text, "routing.test");
  EXPECT_TRUE(r) << (r ? "" : r.error().message);
  return r ? *r : std::vector<RoutingRule>{};
}

std::string ParseError(std::string_view text, std::string_view field = "routing.subject") {
  auto r = ParseRoutingRules(text, field);
  if (r) return "(parsed)";
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().field, field);
  return r.error().message;
}

RoutingRules Rules(std::string_view project, std::string_view subject = "", std::string_view session = "") {
  RoutingRules rules;
  rules.project = MustParse(project);
  rules.subject = MustParse(subject);
  rules.session = MustParse(session);
  return rules;
}

AttributeLookup Header(std::map<uint32_t, std::string> values) {
  return [values = std::move(values)](uint32_t tag) -> std::optional<std::string> {
    auto it = values.find(tag);
    if (it == values.end()) return std::nullopt;
    return it->second;
  };
}

// ---- parsing ----

TEST(RoutingParse, EmptyTextGivesNoRules) {
  EXPECT_TRUE(MustParse("").empty());
  EXPECT_TRUE(MustParse("\n# only a comment\n   \n").empty());
  EXPECT_TRUE(RoutingRules{}.empty());
  EXPECT_FALSE(Rules("", "(0010,0010):(.*)").empty());
}

TEST(RoutingParse, GroupDefaultsToOne) {
  auto rules = MustParse("(0008,1030):^Study-(\\d+)");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].tag, 0x00081030u);
  EXPECT_EQ(rules[0].pattern, "^Study-(\\d+)");
  EXPECT_EQ(rules[0].group, 1);
  EXPECT_EQ(rules[0].line, 1);
}

TEST(RoutingParse, ExplicitGroup) {
  auto rules = MustParse("(0010,0020):^([A-Z]+)-(\\d+):2");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].pattern, "^([A-Z]+)-(\\d+)");
  EXPECT_EQ(rules[0].group, 2);
}

TEST(RoutingParse, GroupZeroIsTheWholeMatch) {
  auto rules = MustParse("(0008,1030):Study-\\d+:0");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].pattern, "Study-\\d+");
  EXPECT_EQ(rules[0].group, 0);
}

TEST(RoutingParse, TrailingColonDigitsAreAlwaysTheGroup) {
  auto rules = MustParse("(0008,1030):(a):(b):2");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].pattern, "(a):(b)");
  EXPECT_EQ(rules[0].group, 2);
  // A colon not followed by digits only stays in the regex.
  rules = MustParse("(0008,1030):(x):y\n(0008,1030):(a:b)\n(0008,1030):(t):5x");
  ASSERT_EQ(rules.size(), 3u);
  EXPECT_EQ(rules[0].pattern, "(x):y");
  EXPECT_EQ(rules[1].pattern, "(a:b)");
  EXPECT_EQ(rules[2].pattern, "(t):5x");
  EXPECT_EQ(rules[2].group, 1);
  // The documented way to end a regex with ":5".
  rules = MustParse("(0008,1030):(t)[:]5");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].pattern, "(t)[:]5");
}

TEST(RoutingParse, SkipsBlankAndCommentLinesKeepingLineNumbers) {
  auto rules = MustParse("# project rules\n\n  (0008,1030):(.*)  \r\n\t# x\n(0008,0050):(\\w+)\n");
  ASSERT_EQ(rules.size(), 2u);
  EXPECT_EQ(rules[0].line, 3);
  EXPECT_EQ(rules[0].pattern, "(.*)");  // the line is trimmed
  EXPECT_EQ(rules[1].line, 5);
  EXPECT_EQ(rules[1].tag, 0x00080050u);
}

TEST(RoutingParse, HexDigitsInEitherCase) {
  auto rules = MustParse("(7fe1,10aB):(.*)");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].tag, 0x7FE110ABu);
}

TEST(RoutingParse, SpacesBeforeTheColonAreAllowedAfterItTheyAreTheRegex) {
  auto rules = MustParse("(0010,0010) : (\\w+)");
  ASSERT_EQ(rules.size(), 1u);
  EXPECT_EQ(rules[0].pattern, " (\\w+)");
}

TEST(RoutingParse, ErrorBadTag) {
  EXPECT_EQ(ParseError("(0010,0010):(.*)\n(0010,001G):(.*)"),
            "line 2: bad tag '(0010,001G)'; write the tag as (gggg,eeee) in hexadecimal, e.g. "
            "(0010,0020)");
  EXPECT_EQ(ParseError("0010,0010:(.*)"),
            "line 1: bad tag '0010,0010'; write the tag as (gggg,eeee) in hexadecimal, e.g. "
            "(0010,0020)");
  EXPECT_EQ(ParseError("(0010,0010:(.*)"),
            "line 1: bad tag '(0010,0010'; write the tag as (gggg,eeee) in hexadecimal, e.g. "
            "(0010,0020)");
  EXPECT_EQ(ParseError("(10,10):(.*)"),
            "line 1: bad tag '(10,10)'; write the tag as (gggg,eeee) in hexadecimal, e.g. "
            "(0010,0020)");
}

TEST(RoutingParse, ErrorMissingColon) {
  EXPECT_EQ(ParseError("\n(0010,0010)(.*)"),
            "line 2: missing ':' after the tag (0010,0010); write (gggg,eeee):regex[:group]");
  EXPECT_EQ(ParseError("(0010,0010)"),
            "line 1: missing ':' after the tag (0010,0010); write (gggg,eeee):regex[:group]");
}

TEST(RoutingParse, ErrorEmptyRegex) {
  EXPECT_EQ(ParseError("# c\n# c\n(0010,0010):"), "line 3: the regex is empty");
  EXPECT_EQ(ParseError("(0010,0010)::1"), "line 1: the regex is empty");
}

TEST(RoutingParse, ErrorInvalidRegexSaysWhy) {
  std::string message = ParseError("(0010,0010):(.*)\n(0010,0010):([a-");
  EXPECT_EQ(message.rfind("line 2: invalid regex '([a-': ", 0), 0u) << message;
  EXPECT_GT(message.size(), std::string("line 2: invalid regex '([a-': ").size()) << message;
  message = ParseError("(0010,0010):(a");
  EXPECT_EQ(message.rfind("line 1: invalid regex '(a': ", 0), 0u) << message;
}

TEST(RoutingParse, ErrorBackReference) {
  EXPECT_EQ(ParseError("(0010,0010):(a)\\1"),
            "line 1: invalid regex '(a)\\1': back-references such as \\1 are not supported");
  // Look-arounds need backtracking too: refused, with RE2's reason.
  EXPECT_EQ(ParseError("(0010,0010):(?=a)(a)").rfind("line 1: invalid regex '(?=a)(a)': ", 0), 0u);
}

TEST(RoutingConfigured, RegexSyntaxFlagsAndUnmatchedGroups) {
  // (?i): case-insensitive; a group that took no part gives no label, so the next rule counts.
  RoutingRules site = Rules("(0008,1030):(?i)^study-(\\d+)\n(0008,1030):^(x)?LAB-(\\w+):1\n(0008,1030):LAB-(\\w+)");
  EXPECT_EQ(Route(nullptr, &site, "", Header({{kStudyDescription, "STUDY-42 x"}})).project, "42");
  EXPECT_EQ(Route(nullptr, &site, "", Header({{kStudyDescription, "LAB-Alpha"}})).project, "Alpha");
  // A pathological pattern on a long value is matched in linear time and just fails.
  RoutingRules slow = Rules("(0008,1030):^(a+)+b");
  EXPECT_EQ(Route(nullptr, &slow, "", Header({{kStudyDescription, std::string(5000, 'a')}})).project_source,
            LabelSource::kDefaultRule);  // the rule did not match; the default rules decided
}

TEST(RoutingParse, ErrorGroupOutOfRange) {
  EXPECT_EQ(ParseError("(0010,0010):(a)b:2"), "line 1: group 2 but the regex has 1 capturing group");
  EXPECT_EQ(ParseError("\n(0010,0010):(a)(b):3"), "line 2: group 3 but the regex has 2 capturing groups");
  EXPECT_EQ(ParseError("(0010,0010):(a):99999999999999999999"),
            "line 1: group 2147483647 but the regex has 1 capturing group");
}

TEST(RoutingParse, ErrorDefaultGroupWithoutCapturingGroupHints) {
  EXPECT_EQ(ParseError("(0008,1030):Study-\\d+", "routing.project"),
            "line 1: group 1 but the regex has 0 capturing groups (put the part to keep in "
            "parentheses, or end the rule with ':0' for the whole match)");
}

// ---- CleanLabel ----

TEST(CleanLabel, KeepsLettersDigitsUnderscoreAndDash) { EXPECT_EQ(CleanLabel("Abc-123_xyz"), "Abc-123_xyz"); }

TEST(CleanLabel, EachRunOfOtherCharactersIsOneUnderscore) {
  EXPECT_EQ(CleanLabel("M\xc3\xbcller^Hans"), "M_ller_Hans");  // "Müller^Hans"
  EXPECT_EQ(CleanLabel("Brain  MRI / contrast"), "Brain_MRI_contrast");
  EXPECT_EQ(CleanLabel("a.b,c;d"), "a_b_c_d");
}

TEST(CleanLabel, TrimsLeadingAndTrailingUnderscores) {
  EXPECT_EQ(CleanLabel("  padded  "), "padded");
  EXPECT_EQ(CleanLabel("^^Doe^John^^"), "Doe_John");
  EXPECT_EQ(CleanLabel("__kept_inside__"), "kept_inside");
  EXPECT_EQ(CleanLabel("-dash-"), "-dash-");
}

TEST(CleanLabel, AtMost64Characters) {
  EXPECT_EQ(CleanLabel(std::string(100, 'a')), std::string(64, 'a'));
  EXPECT_EQ(CleanLabel(std::string(64, 'b')), std::string(64, 'b'));
  // Cut at 64, then no trailing '_': 63 letters and a space would end in '_'.
  EXPECT_EQ(CleanLabel(std::string(63, 'c') + " d"), std::string(63, 'c'));
  // Leading junk does not count towards the 64.
  EXPECT_EQ(CleanLabel(std::string(200, ' ') + std::string(70, 'e')), std::string(64, 'e'));
}

TEST(CleanLabel, NothingUsableGivesEmpty) {
  EXPECT_EQ(CleanLabel(""), "");
  EXPECT_EQ(CleanLabel("   "), "");
  EXPECT_EQ(CleanLabel("^^^"), "");
  EXPECT_EQ(CleanLabel("___"), "");
  EXPECT_EQ(CleanLabel("\xe5\xb1\xb1\xe7\x94\xb0"), "");  // all non-ASCII
}

// ---- Route: defaults ----

TEST(RoutingDefaults, TagsInOrder) {
  EXPECT_EQ(DefaultRoutingTags(), (std::vector<uint32_t>{kPatientComments, kStudyComments, kStudyDescription,
                                                         kPatientName, kPatientId, kAccessionNumber}));
}

TEST(RoutingDefaults, NothingGivesUnassignedAndEmpty) {
  Labels l = Route(nullptr, nullptr, "", Header({}));
  EXPECT_EQ(l.project, kUnassignedProject);
  EXPECT_EQ(l.project_source, LabelSource::kUnassigned);
  EXPECT_EQ(l.project_tag, 0u);
  EXPECT_EQ(l.subject, "");
  EXPECT_EQ(l.subject_source, LabelSource::kNone);
  EXPECT_EQ(l.subject_tag, 0u);
  EXPECT_EQ(l.session, "");
  EXPECT_EQ(l.session_source, LabelSource::kNone);
  EXPECT_EQ(l.session_tag, 0u);
}

TEST(RoutingDefaults, EmptyLookupFunctionMeansNoAttributes) {
  Labels l = Route(nullptr, nullptr, "", AttributeLookup{});
  EXPECT_EQ(l.project, kUnassignedProject);
  EXPECT_EQ(l.subject, "");
}

TEST(RoutingDefaults, DescriptionNameAndId) {
  Labels l = Route(nullptr, nullptr, "",
                   Header({{kStudyDescription, "Brain MRI"},
                           {kPatientName, "Doe^John"},
                           {kPatientId, "PID 42"},
                           {kAccessionNumber, "ACC1"}}));
  EXPECT_EQ(l.project, "Brain_MRI");
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);
  EXPECT_EQ(l.project_tag, kStudyDescription);
  EXPECT_EQ(l.subject, "Doe_John");
  EXPECT_EQ(l.subject_source, LabelSource::kDefaultRule);
  EXPECT_EQ(l.subject_tag, kPatientName);
  EXPECT_EQ(l.session, "PID_42");
  EXPECT_EQ(l.session_source, LabelSource::kDefaultRule);
  EXPECT_EQ(l.session_tag, kPatientId);
}

TEST(RoutingDefaults, AccessionNumberWhenNoStudyDescription) {
  Labels l = Route(nullptr, nullptr, "", Header({{kAccessionNumber, "ACC-7"}}));
  EXPECT_EQ(l.project, "ACC-7");
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);
  EXPECT_EQ(l.project_tag, kAccessionNumber);
}

TEST(RoutingDefaults, StudyDescriptionThatCleansToEmptyFallsThrough) {
  Labels l = Route(nullptr, nullptr, "", Header({{kStudyDescription, " ^^ "}, {kAccessionNumber, "ACC-7"}}));
  EXPECT_EQ(l.project, "ACC-7");
  EXPECT_EQ(l.project_tag, kAccessionNumber);
  l = Route(nullptr, nullptr, "", Header({{kStudyDescription, "***"}, {kPatientName, "^"}}));
  EXPECT_EQ(l.project, kUnassignedProject);
  EXPECT_EQ(l.subject, "");
  EXPECT_EQ(l.subject_source, LabelSource::kNone);
}

TEST(RoutingDefaults, PatientCommentsBeatStudyCommentsBeatStudyDescription) {
  std::map<uint32_t, std::string> h{{kPatientComments, "Project: FromPatient"},
                                    {kStudyComments, "Project: FromStudy"},
                                    {kStudyDescription, "FromDescription"}};
  Labels l = Route(nullptr, nullptr, "", Header(h));
  EXPECT_EQ(l.project, "FromPatient");
  EXPECT_EQ(l.project_source, LabelSource::kComment);
  EXPECT_EQ(l.project_tag, kPatientComments);
  h.erase(kPatientComments);
  l = Route(nullptr, nullptr, "", Header(h));
  EXPECT_EQ(l.project, "FromStudy");
  EXPECT_EQ(l.project_source, LabelSource::kComment);
  EXPECT_EQ(l.project_tag, kStudyComments);
  h.erase(kStudyComments);
  l = Route(nullptr, nullptr, "", Header(h));
  EXPECT_EQ(l.project, "FromDescription");
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);
}

TEST(RoutingDefaults, CommentKeysAreLookedUpPerLabel) {
  // Patient Comments give the subject only; the project comes from Study Comments.
  Labels l = Route(
      nullptr, nullptr, "",
      Header({{kPatientComments, "Subject: S1"}, {kStudyComments, "Project: P1 Subject: S2"}, {kPatientId, "PID"}}));
  EXPECT_EQ(l.project, "P1");
  EXPECT_EQ(l.project_tag, kStudyComments);
  EXPECT_EQ(l.subject, "S1");
  EXPECT_EQ(l.subject_tag, kPatientComments);
  EXPECT_EQ(l.session, "PID");
  EXPECT_EQ(l.session_source, LabelSource::kDefaultRule);
}

TEST(RoutingDefaults, CommentSeparatorsSpacesCommasSemicolons) {
  for (const char* comment : {"Project: P1 Subject: S1 Session: E1", "Project: P1, Subject: S1; Session: E1",
                              "Project:P1,Subject:S1;Session:E1", "Project: P1;Subject: S1,Session: E1",
                              "Project : P1\nSubject:\tS1\r\nSession: E1"}) {
    Labels l = Route(nullptr, nullptr, "", Header({{kPatientComments, comment}}));
    EXPECT_EQ(l.project, "P1") << comment;
    EXPECT_EQ(l.subject, "S1") << comment;
    EXPECT_EQ(l.session, "E1") << comment;
    EXPECT_EQ(l.session_source, LabelSource::kComment) << comment;
  }
}

TEST(RoutingDefaults, CommentKeysInAnyOrderAndCase) {
  Labels l = Route(nullptr, nullptr, "", Header({{kStudyComments, "SESSION: e1; project: p1, SuBjEcT: s1"}}));
  EXPECT_EQ(l.project, "p1");
  EXPECT_EQ(l.subject, "s1");
  EXPECT_EQ(l.session, "e1");
}

TEST(RoutingDefaults, CommentValueIsOneWordAndKeyMustStartAWord) {
  Labels l = Route(nullptr, nullptr, "",
                   Header({{kPatientComments, "MyProject: X Project: Real Study"}, {kStudyDescription, "Desc"}}));
  EXPECT_EQ(l.project, "Real");
  // A key with no value does not swallow the next key.
  l = Route(nullptr, nullptr, "", Header({{kPatientComments, "Project: Subject: S1"}, {kStudyDescription, "Desc"}}));
  EXPECT_EQ(l.project, "Desc");
  EXPECT_EQ(l.subject, "S1");
  // Free text around the keys.
  l = Route(nullptr, nullptr, "", Header({{kPatientComments, "scanned late. project: P9 (ask Bob)"}}));
  EXPECT_EQ(l.project, "P9");
}

TEST(RoutingDefaults, CommentValueThatCleansToEmptyFallsThrough) {
  Labels l =
      Route(nullptr, nullptr, "", Header({{kPatientComments, "Project: ^^^"}, {kStudyComments, "Project: FromStudy"}}));
  EXPECT_EQ(l.project, "FromStudy");
  EXPECT_EQ(l.project_tag, kStudyComments);
}

TEST(RoutingDefaults, ReceiverDefaultProjectBeatsDescriptionLosesToComments) {
  Labels l = Route(nullptr, nullptr, "Lab Default", Header({{kStudyDescription, "Desc"}, {kAccessionNumber, "ACC"}}));
  EXPECT_EQ(l.project, "Lab_Default");  // cleaned too
  EXPECT_EQ(l.project_source, LabelSource::kReceiverDefault);
  EXPECT_EQ(l.project_tag, 0u);
  l = Route(nullptr, nullptr, "LabDefault",
            Header({{kStudyComments, "Project: FromComment"}, {kStudyDescription, "Desc"}}));
  EXPECT_EQ(l.project, "FromComment");
  EXPECT_EQ(l.project_source, LabelSource::kComment);
  // Only the project: subject and session still come from their defaults.
  l = Route(nullptr, nullptr, "LabDefault", Header({{kPatientName, "Doe"}, {kPatientId, "1"}}));
  EXPECT_EQ(l.subject, "Doe");
  EXPECT_EQ(l.session, "1");
  // A default that cleans to "" is no default.
  l = Route(nullptr, nullptr, " ^ ", Header({{kStudyDescription, "Desc"}}));
  EXPECT_EQ(l.project, "Desc");
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);
}

// ---- Route: configured rules ----

TEST(RoutingConfigured, PrecedenceIsPerLabel) {
  // Receiver gives only the project, the site only the subject, the defaults the session.
  RoutingRules receiver = Rules("(0008,0080):^(\\w+)");
  RoutingRules site = Rules("(0008,1030):(.*)", "(0010,0020):^(\\d+)");
  Labels l = Route(&receiver, &site, "Default",
                   Header({{kInstitutionName, "Clinic North"},
                           {kStudyDescription, "Desc"},
                           {kPatientId, "12345"},
                           {kPatientComments, "Project: C Subject: C Session: FromComment"}}));
  EXPECT_EQ(l.project, "Clinic");
  EXPECT_EQ(l.project_source, LabelSource::kReceiverRule);
  EXPECT_EQ(l.project_tag, kInstitutionName);
  EXPECT_EQ(l.subject, "12345");
  EXPECT_EQ(l.subject_source, LabelSource::kSiteRule);
  EXPECT_EQ(l.subject_tag, kPatientId);
  EXPECT_EQ(l.session, "FromComment");
  EXPECT_EQ(l.session_source, LabelSource::kComment);
  EXPECT_EQ(l.session_tag, kPatientComments);
}

TEST(RoutingConfigured, ReceiverBeatsSite) {
  RoutingRules receiver = Rules("(0008,1030):^(\\w+)");
  RoutingRules site = Rules("(0008,1030):(\\w+)$");
  Labels l = Route(&receiver, &site, "", Header({{kStudyDescription, "First Last"}}));
  EXPECT_EQ(l.project, "First");
  EXPECT_EQ(l.project_source, LabelSource::kReceiverRule);
}

TEST(RoutingConfigured, NonMatchingReceiverRuleFallsToSite) {
  RoutingRules receiver = Rules("(0008,1030):^Trial-(\\d+)");
  RoutingRules site = Rules("(0008,1030):(\\w+)$");
  Labels l = Route(&receiver, &site, "", Header({{kStudyDescription, "First Last"}}));
  EXPECT_EQ(l.project, "Last");
  EXPECT_EQ(l.project_source, LabelSource::kSiteRule);
  EXPECT_EQ(l.project_tag, kStudyDescription);
}

TEST(RoutingConfigured, TheDecidingRuleLineIsKept) {
  // Line 3 (after a comment and a rule that does not match) decides the project; defaults and
  // comments have no line.
  RoutingRules receiver = Rules("# by trial\n(0008,1030):^Trial-(\\d+)\n(0008,1030):(\\w+)$");
  Labels l = Route(&receiver, nullptr, "", Header({{kStudyDescription, "First Last"}, {kPatientId, "P1"}}));
  EXPECT_EQ(l.project, "Last");
  EXPECT_EQ(l.project_line, 3);
  EXPECT_EQ(l.session_source, LabelSource::kDefaultRule);
  EXPECT_EQ(l.session_line, 0);
}

TEST(RoutingConfigured, SiteAloneWithoutReceiver) {
  RoutingRules site = Rules("", "", "(0020,0010):(.+)");
  Labels l = Route(nullptr, &site, "", Header({{0x00200010, "SID 9"}, {kPatientId, "PID"}}));
  EXPECT_EQ(l.session, "SID_9");
  EXPECT_EQ(l.session_source, LabelSource::kSiteRule);
  EXPECT_EQ(l.session_tag, 0x00200010u);
}

TEST(RoutingConfigured, RulesBeatCommentsAndReceiverDefault) {
  RoutingRules site = Rules("(0008,1030):(.+)");
  Labels l =
      Route(nullptr, &site, "LabDefault", Header({{kStudyDescription, "Desc"}, {kPatientComments, "Project: C"}}));
  EXPECT_EQ(l.project, "Desc");
  EXPECT_EQ(l.project_source, LabelSource::kSiteRule);
}

TEST(RoutingConfigured, FirstMatchingRuleWins) {
  RoutingRules receiver = Rules("(0008,1030):^A(\\d)\n(0008,1030):(\\d+)\n(0008,1030):(.+)");
  Labels l = Route(&receiver, nullptr, "", Header({{kStudyDescription, "B12"}}));
  EXPECT_EQ(l.project, "12");
  l = Route(&receiver, nullptr, "", Header({{kStudyDescription, "A12"}}));
  EXPECT_EQ(l.project, "1");
  l = Route(&receiver, nullptr, "", Header({{kStudyDescription, "none"}}));
  EXPECT_EQ(l.project, "none");
}

TEST(RoutingConfigured, ExplicitAndWholeMatchGroups) {
  RoutingRules receiver = Rules("(0010,0020):^([A-Z]+)-(\\d+):2", "(0010,0020):[A-Z]+-\\d:0");
  Labels l = Route(&receiver, nullptr, "", Header({{kPatientId, "ABC-123"}}));
  EXPECT_EQ(l.project, "123");
  EXPECT_EQ(l.subject, "ABC-1");
}

TEST(RoutingConfigured, ValueThatCleansToEmptyFallsThrough) {
  // The first rule matches but captures only punctuation; the next rule counts.
  RoutingRules receiver = Rules("(0008,1030):^([^A-Za-z]*)\n(0008,1030):([A-Za-z]+)");
  Labels l = Route(&receiver, nullptr, "", Header({{kStudyDescription, "** Brain"}}));
  EXPECT_EQ(l.project, "Brain");
  EXPECT_EQ(l.project_source, LabelSource::kReceiverRule);
  // A group that does not take part counts as "", down to the site and the defaults.
  RoutingRules optional_group = Rules("(0008,1030):^X(\\d+)?");
  RoutingRules site = Rules("(0008,1030):^X(\\d+)?");
  l = Route(&optional_group, &site, "", Header({{kStudyDescription, "Xray"}}));
  EXPECT_EQ(l.project, "Xray");
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);
}

TEST(RoutingConfigured, AbsentAttributeSkipsTheRule) {
  RoutingRules receiver = Rules("", "(0008,0080):(.*)\n(0010,0010):^(\\w+)");
  Labels l = Route(&receiver, nullptr, "", Header({{kPatientName, "Doe^John"}}));
  EXPECT_EQ(l.subject, "Doe");
  EXPECT_EQ(l.subject_source, LabelSource::kReceiverRule);
  EXPECT_EQ(l.subject_tag, kPatientName);
}

TEST(RoutingConfigured, EachAttributeIsLookedUpOnce) {
  std::map<uint32_t, int> calls;
  AttributeLookup get = [&calls](uint32_t tag) -> std::optional<std::string> {
    ++calls[tag];
    if (tag == kStudyDescription) return "Desc";
    return std::nullopt;
  };
  RoutingRules receiver = Rules("(0008,1030):^(X)\n(0008,1030):^(Y)", "(0008,1030):^(Z)");
  RoutingRules site = Rules("(0008,1030):^(W)");
  Labels l = Route(&receiver, &site, "", get);
  EXPECT_EQ(l.project, "Desc");
  for (const auto& [tag, n] : calls) EXPECT_EQ(n, 1) << std::hex << tag;
}

TEST(RoutingConfigured, MatchSeesOnlyTheFirst1024Characters) {
  RoutingRules receiver = Rules("(0008,1030):Study-(\\d+)");
  std::string near(1000, 'x');
  Labels l = Route(&receiver, nullptr, "", Header({{kStudyDescription, near + "Study-7"}}));
  EXPECT_EQ(l.project, "7");
  std::string far(1020, 'x');  // "Study-7" straddles the cut
  l = Route(&receiver, nullptr, "", Header({{kStudyDescription, far + "Study-7"}}));
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);
  EXPECT_EQ(l.project, std::string(64, 'x'));
}

TEST(RoutingConfigured, CatastrophicRegexOnHugeValueFinishes) {
  // Backtracking executors take exponential time on these; the value is 100 KB, and the '!'
  // keeps them failing within the first 1024 characters too.
  std::string huge;
  while (huge.size() < 100 * 1024) huge += std::string(1000, 'a') + "!";
  RoutingRules receiver = Rules("(0008,1030):^(a+)+$", "(0008,1030):(a+)+b");
  auto start = std::chrono::steady_clock::now();
  Labels l = Route(&receiver, nullptr, "", Header({{kStudyDescription, huge}}));
  auto seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(l.project_source, LabelSource::kDefaultRule);  // "a...a!" cleans to 64 'a'
  EXPECT_EQ(l.project, std::string(64, 'a'));
  EXPECT_EQ(l.subject_source, LabelSource::kNone);
  EXPECT_EQ(l.session_source, LabelSource::kNone);
  // Generous: a sanitizer build needs a few seconds, a release build well under one.
  EXPECT_LT(seconds, 60.0);
}

TEST(RoutingConfigured, GreedyRegexOnHugeValueDoesNotOverflowTheStack) {
  std::string huge(100 * 1024, 'b');
  RoutingRules receiver = Rules("(0008,1030):^(.*)$", "(0008,1030):^((b|c)*)");
  Labels l = Route(&receiver, nullptr, "", Header({{kStudyDescription, huge}}));
  EXPECT_EQ(l.project, std::string(64, 'b'));
  EXPECT_EQ(l.project_source, LabelSource::kReceiverRule);
  EXPECT_EQ(l.subject, std::string(64, 'b'));
  EXPECT_EQ(l.subject_source, LabelSource::kReceiverRule);
}

}  // namespace
}  // namespace pb
