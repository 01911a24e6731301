#include "dicomweb/qido.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <utility>
#include <vector>

#include "dicom/find.h"

namespace pb::dicomweb {
namespace {

using Keys = std::vector<std::pair<std::string, std::string>>;
using Params = std::vector<std::pair<std::string, std::string>>;

// The values of every parameter named `name`, in order.
std::vector<std::string> ValuesOf(const QidoSearch& s, const std::string& name) {
  std::vector<std::string> out;
  for (const auto& [n, v] : s.params) {
    if (n == name) out.push_back(v);
  }
  return out;
}

bool Has(const std::vector<std::string>& list, const std::string& v) {
  return std::find(list.begin(), list.end(), v) != list.end();
}

QidoSearch MustBuild(const std::string& level, const Keys& keys) {
  auto s = BuildSearch(level, keys);
  EXPECT_TRUE(s.has_value()) << (s ? "" : s.error().message);
  return s ? *s : QidoSearch{};
}

// --- BuildSearch: the resource path (PS3.18 10.6.1, Table 10.6.1-2) ---

TEST(QidoBuildSearch, StudyLevelSearchesAllStudies) {
  EXPECT_EQ(MustBuild("STUDY", {{"PatientID", "P1"}}).path, "studies");
  EXPECT_EQ(MustBuild("study", {}).path, "studies");  // the level in any case
}

TEST(QidoBuildSearch, PatientLevelIsAskedAsAStudySearch) {
  QidoSearch s = MustBuild("PATIENT", {{"PatientID", "P1"}});
  EXPECT_EQ(s.path, "studies");
  // Grouping by patient needs each study's UID.
  EXPECT_TRUE(Has(ValuesOf(s, "includefield"), "StudyInstanceUID"));
}

TEST(QidoBuildSearch, SeriesOfOneStudyUseTheStudysSeriesResource) {
  QidoSearch s = MustBuild("SERIES", {{"StudyInstanceUID", "1.2.840.113619.2.1"}, {"Modality", "CT"}});
  EXPECT_EQ(s.path, "studies/1.2.840.113619.2.1/series");
  EXPECT_TRUE(ValuesOf(s, "StudyInstanceUID").empty()) << "the UID is in the path, not a parameter too";
  EXPECT_EQ(ValuesOf(s, "Modality"), std::vector<std::string>{"CT"});
}

TEST(QidoBuildSearch, SeriesWithoutStudyUseTheAllSeriesResource) {
  EXPECT_EQ(MustBuild("SERIES", {{"Modality", "MR"}}).path, "series");
}

TEST(QidoBuildSearch, InstancesOfOneSeriesUseTheFullPath) {
  QidoSearch s = MustBuild("IMAGE", {{"StudyInstanceUID", "1.2.3"}, {"SeriesInstanceUID", "1.2.3.4"}});
  EXPECT_EQ(s.path, "studies/1.2.3/series/1.2.3.4/instances");
  EXPECT_TRUE(ValuesOf(s, "StudyInstanceUID").empty());
  EXPECT_TRUE(ValuesOf(s, "SeriesInstanceUID").empty());
}

TEST(QidoBuildSearch, InstancesOfOneStudyOnly) {
  EXPECT_EQ(MustBuild("IMAGE", {{"StudyInstanceUID", "1.2.3"}}).path, "studies/1.2.3/instances");
}

TEST(QidoBuildSearch, UidListBecomesCommaSeparatedMatch) {
  // DIMSE multi-valued UID list "a\b" is PS3.18 8.3.4.1 UID list matching "a,b"; a list cannot
  // be a path segment, so the search is over all studies / series.
  QidoSearch study = MustBuild("STUDY", {{"StudyInstanceUID", "1.2.3\\1.2.4\\1.2.5"}});
  EXPECT_EQ(study.path, "studies");
  EXPECT_EQ(ValuesOf(study, "StudyInstanceUID"), std::vector<std::string>{"1.2.3,1.2.4,1.2.5"});

  QidoSearch series = MustBuild("SERIES", {{"StudyInstanceUID", "1.2.3\\1.2.4"}});
  EXPECT_EQ(series.path, "series");
  EXPECT_EQ(ValuesOf(series, "StudyInstanceUID"), std::vector<std::string>{"1.2.3,1.2.4"});

  QidoSearch images = MustBuild("IMAGE", {{"StudyInstanceUID", "1.2.3"}, {"SeriesInstanceUID", "1.5\\1.6"}});
  EXPECT_EQ(images.path, "studies/1.2.3/instances");
  EXPECT_EQ(ValuesOf(images, "SeriesInstanceUID"), std::vector<std::string>{"1.5,1.6"});
}

TEST(QidoBuildSearch, AStudyUidAtStudyLevelIsAMatchNotAPath) {
  // /studies/{uid} is a retrieve (WADO-RS), not a search.
  QidoSearch s = MustBuild("STUDY", {{"StudyInstanceUID", "1.2.3"}});
  EXPECT_EQ(s.path, "studies");
  EXPECT_EQ(ValuesOf(s, "StudyInstanceUID"), std::vector<std::string>{"1.2.3"});
}

// --- BuildSearch: matching and return keys ---

TEST(QidoBuildSearch, EveryDefaultReturnKeyIsAnIncludefield) {
  for (const std::string level : {"STUDY", "SERIES", "IMAGE"}) {
    QidoSearch s = MustBuild(level, {});
    const auto included = ValuesOf(s, "includefield");
    for (uint32_t tag : dicom::DefaultReturnKeys(level)) {
      EXPECT_TRUE(Has(included, dicom::LookupTag(tag).keyword)) << level << ": " << dicom::LookupTag(tag).keyword;
    }
    // Each asked for once.
    auto sorted = included;
    std::sort(sorted.begin(), sorted.end());
    EXPECT_EQ(std::adjacent_find(sorted.begin(), sorted.end()), sorted.end()) << level;
  }
  // The unique keys of each level (PS3.4 C.6.2.1) are asked for whatever the table says.
  EXPECT_TRUE(Has(ValuesOf(MustBuild("STUDY", {}), "includefield"), "StudyInstanceUID"));
  EXPECT_TRUE(Has(ValuesOf(MustBuild("SERIES", {}), "includefield"), "SeriesInstanceUID"));
  EXPECT_TRUE(Has(ValuesOf(MustBuild("IMAGE", {}), "includefield"), "SOPInstanceUID"));
}

TEST(QidoBuildSearch, KeysWithoutValueAreIncludefieldsByKeyword) {
  QidoSearch s = MustBuild("STUDY", {{"InstitutionName", ""}, {"OperatorsName", "  "}, {"PatientID", "12345"}});
  const auto included = ValuesOf(s, "includefield");
  EXPECT_TRUE(Has(included, "InstitutionName"));
  EXPECT_TRUE(Has(included, "OperatorsName"));
  EXPECT_TRUE(ValuesOf(s, "InstitutionName").empty()) << "an empty key is not a match";
  EXPECT_EQ(ValuesOf(s, "PatientID"), std::vector<std::string>{"12345"});
}

TEST(QidoBuildSearch, KeywordsAndWildcardsAreKeptAsGiven) {
  QidoSearch s = MustBuild("STUDY", {{"PatientName", "Doe^J*"},
                                     {"AccessionNumber", "A?1"},
                                     {"StudyDate", "20240101-20240131"},
                                     {"ModalitiesInStudy", "CT"}});
  EXPECT_EQ(ValuesOf(s, "PatientName"), std::vector<std::string>{"Doe^J*"});
  EXPECT_EQ(ValuesOf(s, "AccessionNumber"), std::vector<std::string>{"A?1"});
  EXPECT_EQ(ValuesOf(s, "StudyDate"), std::vector<std::string>{"20240101-20240131"});
  EXPECT_EQ(ValuesOf(s, "ModalitiesInStudy"), std::vector<std::string>{"CT"});
}

TEST(QidoBuildSearch, ATagGivenAsNumbersIsSentAsItsKeyword) {
  QidoSearch s = MustBuild("STUDY", {{"(0010,0020)", "P7"}});
  EXPECT_EQ(ValuesOf(s, "PatientID"), std::vector<std::string>{"P7"});
}

TEST(QidoBuildSearch, PrivateTagIsEightHexDigits) {
  // PS3.18 8.3.4.1: an attribute is a keyword or its tag as 8 hex digits.
  QidoSearch s = MustBuild("STUDY", {{"(0009,1001)", "abc"}, {"(0019,10ab)", ""}});
  EXPECT_EQ(ValuesOf(s, "00091001"), std::vector<std::string>{"abc"});
  EXPECT_TRUE(Has(ValuesOf(s, "includefield"), "001910AB"));
}

TEST(QidoBuildSearch, PrivateCreatorIsEightHexDigits) {
  // (gggg,0010-00FF) in an odd group reserves a private block; DCMTK's dictionary calls every
  // one of them "PrivateCreator", a name that no server can resolve to one tag.
  QidoSearch s = MustBuild("STUDY", {{"(0009,0010)", "ACME"}, {"(0029,0011)", ""}});
  EXPECT_EQ(ValuesOf(s, "00090010"), std::vector<std::string>{"ACME"});
  EXPECT_TRUE(Has(ValuesOf(s, "includefield"), "00290011"));
}

TEST(QidoBuildSearch, RepeatingGroupKeepsItsGroup) {
  // Overlay group 6002 (PS3.5 7.6 repeating groups): the dictionary keyword names (6000,xxxx),
  // so only the tag says which overlay.
  QidoSearch s = MustBuild("IMAGE", {{"(6002,0010)", ""}});
  EXPECT_TRUE(Has(ValuesOf(s, "includefield"), "60020010"));
  EXPECT_FALSE(Has(ValuesOf(s, "includefield"), "OverlayRows"));
}

// --- BuildSearch: errors name the field ---

TEST(QidoBuildSearch, UnknownKeywordNamesTheQueryField) {
  auto s = BuildSearch("STUDY", {{"PatientNmae", "Doe"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().code, Code::kInvalidArgument);
  EXPECT_EQ(s.error().field, "query.PatientNmae");
  EXPECT_NE(s.error().message.find("PatientNmae"), std::string::npos) << s.error().message;
}

TEST(QidoBuildSearch, MalformedDateNamesTheQueryField) {
  for (const std::string bad : {"2024-01-01", "20241301", "2024011", "yesterday", "20240131-20240101"}) {
    auto s = BuildSearch("STUDY", {{"StudyDate", bad}});
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_EQ(s.error().code, Code::kInvalidArgument) << bad;
    EXPECT_EQ(s.error().field, "query.StudyDate") << bad;
  }
}

TEST(QidoBuildSearch, MalformedUidNamesTheQueryField) {
  auto s = BuildSearch("SERIES", {{"StudyInstanceUID", "1.2.*"}});
  ASSERT_FALSE(s.has_value());
  EXPECT_EQ(s.error().field, "query.StudyInstanceUID");
}

TEST(QidoBuildSearch, BadLevelNamesTheLevelField) {
  for (const std::string bad : {"", "WORKLIST", "INSTANCE"}) {
    auto s = BuildSearch(bad, {});
    ASSERT_FALSE(s.has_value()) << bad;
    EXPECT_EQ(s.error().code, Code::kInvalidArgument);
    EXPECT_EQ(s.error().field, "level");
  }
}

// --- SearchUrl ---

TEST(QidoSearchUrl, JoinsRootAndPathWithOneSlash) {
  QidoSearch s{"studies", {}};
  EXPECT_EQ(SearchUrl("http://h:8042/dicom-web", s, 0, 0), "http://h:8042/dicom-web/studies");
  EXPECT_EQ(SearchUrl("http://h:8042/dicom-web/", s, 0, 0), "http://h:8042/dicom-web/studies");
}

TEST(QidoSearchUrl, MatchingCharactersStayLiteral) {
  // Servers such as Orthanc take query values as they come: `*`, `?` (wildcards), `^` (PN
  // components) and `,` (UID lists) must reach them unencoded.
  QidoSearch s{"studies", {{"PatientName", "Do?^J*"}, {"StudyInstanceUID", "1.2,1.3"}}};
  EXPECT_EQ(SearchUrl("http://h/r", s, 0, 0), "http://h/r/studies?PatientName=Do?^J*&StudyInstanceUID=1.2,1.3");
}

TEST(QidoSearchUrl, DelimitersSpacesAndNonAsciiArePercentEncoded) {
  // RFC 3986: these would end the value, start a fragment, or be read as a space ("+").
  QidoSearch s{"studies", {{"StudyDescription", "a b&c=d#e%f+g"}}};
  EXPECT_EQ(SearchUrl("http://h/r", s, 0, 0), "http://h/r/studies?StudyDescription=a%20b%26c%3Dd%23e%25f%2Bg");
  // "Müller" in UTF-8: ü is C3 BC.
  QidoSearch u{"studies", {{"PatientName", "M\xC3\xBCller^Hans"}}};
  EXPECT_EQ(SearchUrl("http://h/r", u, 0, 0), "http://h/r/studies?PatientName=M%C3%BCller^Hans");
}

TEST(QidoSearchUrl, LimitAndOffsetOnlyWhenNotZero) {
  QidoSearch s{"series", {{"Modality", "CT"}}};
  EXPECT_EQ(SearchUrl("http://h/r", s, 0, 0), "http://h/r/series?Modality=CT");
  EXPECT_EQ(SearchUrl("http://h/r", s, 100, 0), "http://h/r/series?Modality=CT&limit=100");
  EXPECT_EQ(SearchUrl("http://h/r", s, 0, 200), "http://h/r/series?Modality=CT&offset=200");
  EXPECT_EQ(SearchUrl("http://h/r", s, 50, 150), "http://h/r/series?Modality=CT&limit=50&offset=150");
  QidoSearch bare{"studies", {}};
  EXPECT_EQ(SearchUrl("http://h/r", bare, 10, 0), "http://h/r/studies?limit=10");
}

TEST(QidoSearchUrl, BuiltSearchRoundTrip) {
  QidoSearch s = MustBuild("SERIES", {{"StudyInstanceUID", "1.2.3"}, {"Modality", "CT"}});
  const std::string url = SearchUrl("http://h/dicom-web/", s, 0, 0);
  EXPECT_EQ(url.rfind("http://h/dicom-web/studies/1.2.3/series?", 0), 0u) << url;
  EXPECT_NE(url.find("Modality=CT"), std::string::npos) << url;
  EXPECT_NE(url.find("includefield=SeriesInstanceUID"), std::string::npos) << url;
}

// --- RowsFromDicomJson (PS3.18 F.2) ---

TEST(QidoRows, AStudyAnswerBecomesKeywordRows) {
  // Written after PS3.18 F.2.1.1.2: tags as 8 upper-case hex digits, "vr", "Value" arrays.
  const char* body = R"([
    {
      "00080005": {"vr": "CS", "Value": ["ISO_IR 192"]},
      "00080020": {"vr": "DA", "Value": ["20130409"]},
      "00080061": {"vr": "CS", "Value": ["CT", "PT"]},
      "00081190": {"vr": "UR", "Value": ["http://wado.nema.org/studies/1.2.392.200036.9116.2.2.2.1762893313.1029997326.945873"]},
      "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Yamada^Tarou", "Ideographic": "\u5c71\u7530^\u592a\u90ce", "Phonetic": "\u3084\u307e\u3060^\u305f\u308d\u3046"}]},
      "00100020": {"vr": "LO", "Value": ["12345"]},
      "00200010": {"vr": "SH"},
      "0020000D": {"vr": "UI", "Value": ["1.2.392.200036.9116.2.2.2.1762893313.1029997326.945873"]},
      "00201206": {"vr": "IS", "Value": [12]},
      "00180050": {"vr": "DS", "Value": [1.5]},
      "00280010": {"vr": "US", "Value": [512]},
      "00081032": {"vr": "SQ", "Value": [{"00080100": {"vr": "SH", "Value": ["X"]}}]},
      "00091002": {"vr": "OB", "InlineBinary": "AAEC"},
      "00420011": {"vr": "OB", "BulkDataURI": "http://wado.nema.org/bulk/1"}
    }
  ])";
  auto rows = RowsFromDicomJson(body);
  ASSERT_TRUE(rows.has_value()) << rows.error().message;
  ASSERT_EQ(rows->size(), 1u);
  const Row& r = rows->front();
  EXPECT_EQ(r.at("StudyDate"), "20130409");
  EXPECT_EQ(r.at("ModalitiesInStudy"), "CT\\PT");
  EXPECT_EQ(r.at("PatientName"), "Yamada^Tarou");
  EXPECT_EQ(r.at("PatientID"), "12345");
  EXPECT_EQ(r.at("StudyID"), "") << "present without a Value: empty";
  EXPECT_EQ(r.at("StudyInstanceUID"), "1.2.392.200036.9116.2.2.2.1762893313.1029997326.945873");
  EXPECT_EQ(r.at("NumberOfStudyRelatedSeries"), "12");
  EXPECT_EQ(r.at("SliceThickness"), "1.5");
  EXPECT_EQ(r.at("Rows"), "512");
  EXPECT_EQ(r.count("SpecificCharacterSet"), 0u);
  EXPECT_EQ(r.count("RetrieveURL"), 0u);
  EXPECT_EQ(r.count("ProcedureCodeSequence"), 0u);
  EXPECT_EQ(r.count("EncapsulatedDocument"), 0u);
  EXPECT_EQ(r.size(), 9u) << "nothing else: no SQ, no bulk data";
}

TEST(QidoRows, LowerCaseTagsAndSeveralMatches) {
  auto rows = RowsFromDicomJson(R"([{"0020000d": {"vr": "UI", "Value": ["1.2"]}},
                                    {"0020000D": {"vr": "UI", "Value": ["1.3"]}}])");
  ASSERT_TRUE(rows.has_value()) << rows.error().message;
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].at("StudyInstanceUID"), "1.2");
  EXPECT_EQ((*rows)[1].at("StudyInstanceUID"), "1.3");
}

TEST(QidoRows, MultiValuedPersonNameAndNullValues) {
  // PS3.18 F.2.5: an empty value is null in the Value array.
  auto rows = RowsFromDicomJson(R"([{
      "00081060": {"vr": "PN", "Value": [{"Alphabetic": "Smith^J"}, {"Alphabetic": "Jones^K"}]},
      "00200020": {"vr": "CS", "Value": [null, "L"]}
  }])");
  ASSERT_TRUE(rows.has_value()) << rows.error().message;
  EXPECT_EQ(rows->front().at("NameOfPhysiciansReadingStudy"), "Smith^J\\Jones^K");
  EXPECT_EQ(rows->front().at("PatientOrientation"), "\\L");
}

TEST(QidoRows, EmptyBodyOrEmptyArrayIsNoMatch) {
  for (const char* body : {"", "  \r\n", "[]"}) {
    auto rows = RowsFromDicomJson(body);
    ASSERT_TRUE(rows.has_value()) << "'" << body << "': " << rows.error().message;
    EXPECT_TRUE(rows->empty());
  }
}

TEST(QidoRows, NotJsonShowsTheBeginning) {
  auto rows = RowsFromDicomJson("<html><body>Gateway Timeout</body></html>");
  ASSERT_FALSE(rows.has_value());
  EXPECT_EQ(rows.error().code, Code::kUnavailable);
  EXPECT_NE(rows.error().message.find("<html><body>Gateway"), std::string::npos) << rows.error().message;
}

TEST(QidoRows, JsonObjectInsteadOfArrayIsAnError) {
  auto rows = RowsFromDicomJson(R"({"0020000D": {"vr": "UI", "Value": ["1.2"]}})");
  ASSERT_FALSE(rows.has_value());
  EXPECT_EQ(rows.error().code, Code::kUnavailable);
  EXPECT_NE(rows.error().message.find("not a list"), std::string::npos) << rows.error().message;
}

TEST(QidoRows, ArrayOfNonObjectsIsAnError) {
  for (const char* body : {R"(["1.2.3"])", "[1, 2]", R"([{"0020000D": {"vr": "UI"}}, null])"}) {
    auto rows = RowsFromDicomJson(body);
    ASSERT_FALSE(rows.has_value()) << body;
    EXPECT_EQ(rows.error().code, Code::kUnavailable);
    EXPECT_NE(rows.error().message.find("not a JSON object"), std::string::npos) << rows.error().message;
  }
}

TEST(QidoRows, WrongJsonTypesFromTheServerAreNotFatal) {
  // Hostile or broken servers: a vr or a name component that is not a string must neither
  // throw nor end the process.
  const char* bodies[] = {
      R"([{"00100010": {"vr": "PN", "Value": [{"Alphabetic": null}]}}])",
      R"([{"00100010": {"vr": "PN", "Value": [{"Alphabetic": 7}]}}])",
      R"([{"00100020": {"vr": 5, "Value": ["x"]}}])",
      R"([{"00100020": {"vr": "LO", "Value": [["nested"], {"a": 1}]}}])",
  };
  for (const char* body : bodies) {
    Result<std::vector<Row>> rows = Fail(Code::kInternal, "not run");
    EXPECT_NO_THROW(rows = RowsFromDicomJson(body)) << body;
  }
}

// --- GroupByPatient ---

TEST(QidoGroupByPatient, CountsStudiesPerPatient) {
  std::vector<Row> studies = {
      {{"PatientID", "P1"}, {"PatientName", "Doe^Jane"}, {"PatientSex", "F"}, {"StudyInstanceUID", "1.1"}},
      {{"PatientID", "P2"}, {"PatientName", "Roe^Rick"}, {"StudyInstanceUID", "2.1"}},
      {{"PatientID", "P1"}, {"PatientName", "Doe^Jane"}, {"PatientSex", "F"}, {"StudyInstanceUID", "1.2"}},
  };
  auto patients = GroupByPatient(studies);
  ASSERT_EQ(patients.size(), 2u);
  EXPECT_EQ(patients[0].at("PatientID"), "P1");
  EXPECT_EQ(patients[0].at("PatientName"), "Doe^Jane");
  EXPECT_EQ(patients[0].at("PatientSex"), "F");
  EXPECT_EQ(patients[0].at("NumberOfPatientRelatedStudies"), "2");
  EXPECT_EQ(patients[0].count("StudyInstanceUID"), 0u) << "a study attribute is not a patient's";
  EXPECT_EQ(patients[1].at("PatientID"), "P2");
  EXPECT_EQ(patients[1].at("NumberOfPatientRelatedStudies"), "1");
}

TEST(QidoGroupByPatient, IssuerDistinguishesPatientsWithTheSameId) {
  std::vector<Row> studies = {
      {{"PatientID", "100"}, {"IssuerOfPatientID", "HOSP_A"}, {"StudyInstanceUID", "1"}},
      {{"PatientID", "100"}, {"IssuerOfPatientID", "HOSP_B"}, {"StudyInstanceUID", "2"}},
      {{"PatientID", "100"}, {"IssuerOfPatientID", "HOSP_A"}, {"StudyInstanceUID", "3"}},
  };
  auto patients = GroupByPatient(studies);
  ASSERT_EQ(patients.size(), 2u);
  EXPECT_EQ(patients[0].at("IssuerOfPatientID"), "HOSP_A");
  EXPECT_EQ(patients[0].at("NumberOfPatientRelatedStudies"), "2");
  EXPECT_EQ(patients[1].at("IssuerOfPatientID"), "HOSP_B");
  EXPECT_EQ(patients[1].at("NumberOfPatientRelatedStudies"), "1");
}

TEST(QidoGroupByPatient, NoStudiesNoPatients) { EXPECT_TRUE(GroupByPatient({}).empty()); }

}  // namespace
}  // namespace pb::dicomweb
