#include "cli/find_table.h"

#include <gtest/gtest.h>

namespace pb::cli {
namespace {

std::vector<std::string> Titles(const std::vector<FindColumn>& columns) {
  std::vector<std::string> out;
  for (const auto& c : columns) out.push_back(c.column.title);
  return out;
}

const std::vector<std::map<std::string, std::string>> kStudies{{{"StudyDate", "20240131"},
                                                                {"PatientName", "DOE^JANE"},
                                                                {"PatientID", "P1"},
                                                                {"StudyDescription", "CT HEAD"},
                                                                {"ModalitiesInStudy", "CT"},
                                                                {"NumberOfStudyRelatedSeries", "2"},
                                                                {"NumberOfStudyRelatedInstances", "40"},
                                                                {"StudyInstanceUID", "1.2.3"},
                                                                {"AccessionNumber", ""},
                                                                {"StudyTime", "101500"}}};

TEST(FindTable, StudiesLeadWithWhatAPersonActsOnAndEndWithTheUid) {
  EXPECT_EQ(Titles(DefaultFindColumns("study", kStudies)),
            (std::vector<std::string>{"DATE", "PATIENT", "ID", "DESCRIPTION", "MODALITY", "SERIES", "INSTANCES",
                                      "STUDY UID"}));
  auto cells = FindCells(DefaultFindColumns("study", kStudies), kStudies[0]);
  EXPECT_EQ(cells.front(), "20240131");
  EXPECT_EQ(cells.back(), "1.2.3");
}

TEST(FindTable, EachLevelEndsWithTheIdentifierThatRetrievesIt) {
  EXPECT_EQ(DefaultFindColumns("SERIES", {}).back().keywords.front(), "SeriesInstanceUID");
  EXPECT_EQ(DefaultFindColumns("IMAGE", {}).back().keywords.front(), "SOPInstanceUID");
  EXPECT_EQ(DefaultFindColumns("patient", {}).back().keywords.front(), "PatientID");
  EXPECT_TRUE(DefaultFindColumns("study", {}).back().column.whole);
  // Empty columns are left out, never the UID.
  EXPECT_EQ(Titles(DefaultFindColumns("study", {{{"StudyInstanceUID", "1.2"}}})),
            (std::vector<std::string>{"STUDY UID"}));
}

TEST(FindTable, ExplicitColumnsAreKeywordsAndAnUnknownOneIsNamed) {
  auto known = [](const std::string& k) { return k == "PatientName" || k == "StudyInstanceUID" || k == "PatientID"; };
  auto c = ExplicitFindColumns("PatientName, StudyInstanceUID,PatientID", known);
  ASSERT_TRUE(c) << c.error().message;
  EXPECT_EQ(Titles(*c), (std::vector<std::string>{"PatientName", "StudyInstanceUID", "PatientID"}));
  EXPECT_FALSE((*c)[0].column.whole);
  EXPECT_TRUE((*c)[1].column.whole);
  EXPECT_TRUE((*c)[2].column.whole);
  auto bad = ExplicitFindColumns("PatientName,Bogus", known);
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("'Bogus' is not a DICOM keyword"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(ExplicitFindColumns("PatientName,,PatientID", known));
}

TEST(TableLayout, FitsTheWidthByCuttingTextsNeverUids) {
  const std::string uid = "1.2.826.0.1.3680043.8.498.12345678901234567890123456789012345678";
  std::vector<TableColumn> columns{{"PATIENT", false}, {"DESCRIPTION", false}, {"STUDY UID", true}};
  std::vector<std::vector<std::string>> rows{{"VERYLONGFAMILYNAME^GIVENNAME", "A VERY LONG STUDY DESCRIPTION", uid}};
  auto wide = LayoutTable(columns, rows, 0);
  EXPECT_NE(wide[1].find("VERYLONGFAMILYNAME^GIVENNAME"), std::string::npos);
  auto fitted = LayoutTable(columns, rows, 100);
  for (const auto& line : fitted) EXPECT_LE(DisplayWidth(line), 100u) << line;
  EXPECT_NE(fitted[1].find(uid), std::string::npos) << fitted[1];
  EXPECT_NE(fitted[1].find("…"), std::string::npos) << fitted[1];
  // Too narrow for the UID: texts shrink to their floor, the UID stays whole.
  auto narrow = LayoutTable(columns, rows, 30);
  EXPECT_NE(narrow[1].find(uid), std::string::npos) << narrow[1];
}

TEST(TableLayout, CountsUtf8CharactersNotBytes) {
  EXPECT_EQ(DisplayWidth("Müller"), 6u);
  EXPECT_EQ(Truncate("Müllerstraße", 5), "Müll…");
  EXPECT_EQ(Truncate("abc", 3), "abc");
  auto lines = LayoutTable({{"A", false}, {"B", false}}, {{"Müller", "x"}, {"Smith", "y"}}, 0);
  EXPECT_EQ(lines[1], "Müller  x");
  EXPECT_EQ(lines[2], "Smith   y");
}

TEST(TableLayout, WideCharactersTakeTwoColumns) {
  // Unicode UAX #11: CJK ideographs and kana are wide (two columns), combining marks take none.
  EXPECT_EQ(DisplayWidth("山田^太郎"), 9u);
  EXPECT_EQ(DisplayWidth("やまだ"), 6u);
  EXPECT_EQ(DisplayWidth("e\xCC\x81"), 1u);  // e + COMBINING ACUTE ACCENT
  EXPECT_EQ(Truncate("山田太郎", 5), "山田…");
  EXPECT_EQ(Truncate("山田太郎", 4), "山…");
  auto lines = LayoutTable({{"Patient", false}, {"ID", false}}, {{"山田^太郎", "P1"}, {"DOE^JOHN", "P2"}}, 0);
  EXPECT_EQ(lines[1], "山田^太郎  P1");
  EXPECT_EQ(lines[2], "DOE^JOHN   P2");
}

}  // namespace
}  // namespace pb::cli
