#include "jobs/import_sheet.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

using Keys = std::vector<std::pair<std::string, std::string>>;

ImportSheet Ok(std::string_view text) {
  auto s = ParseImportSheet(text);
  EXPECT_TRUE(s) << (s ? "" : s.error().message);
  return s ? *s : ImportSheet{};
}

SheetError Bad(std::string_view text) {
  auto s = ParseImportSheet(text);
  EXPECT_FALSE(s) << "accepted: " << text;
  return s ? SheetError{} : s.error();
}

TEST(ImportSheet, HeadersByNameOrKeywordInAnyCase) {
  auto s =
      Ok("Accession Number,patient id,StudyInstanceUID,STUDY_DATE,Modality,Patient's Name,Project,Subject,Session\n"
         "A1,P1,1.2.3,20240102,ct,DOE^JOHN,Lung,S01,V1\n");
  ASSERT_EQ(s.rows.size(), 1u);
  EXPECT_EQ(s.rows[0].line, 2);
  EXPECT_EQ(s.rows[0].keys, (Keys{{"AccessionNumber", "A1"},
                                  {"PatientID", "P1"},
                                  {"StudyInstanceUID", "1.2.3"},
                                  {"StudyDate", "20240102"},
                                  {"ModalitiesInStudy", "CT"},
                                  {"PatientName", "DOE^JOHN"}}));
  EXPECT_EQ(s.rows[0].project, "Lung");
  EXPECT_EQ(s.rows[0].subject, "S01");
  EXPECT_EQ(s.rows[0].session, "V1");
}

TEST(ImportSheet, SemicolonsTabsBomQuotesAndBlankLines) {
  auto s = Ok("\xEF\xBB\xBFPatientID;Patient Name\r\n\r\n\"P;1\";\"Doe, \"\"Jo\"\"\"\r\nP2;\r\n");
  EXPECT_EQ(s.delimiter, ';');
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0].keys, (Keys{{"PatientID", "P;1"}, {"PatientName", "Doe, \"Jo\""}}));
  EXPECT_EQ(s.rows[0].line, 3);
  EXPECT_EQ(s.rows[1].keys, (Keys{{"PatientID", "P2"}}));
  EXPECT_EQ(s.rows[1].line, 4);

  auto t = Ok("Accession\tSubject\nA 1\tS1\n");
  EXPECT_EQ(t.delimiter, '\t');
  EXPECT_EQ(t.rows[0].keys, (Keys{{"AccessionNumber", "A 1"}}));
}

TEST(ImportSheet, DatesAndRanges) {
  auto s =
      Ok("StudyDate\n2024-02-29\n20240101-20240131\n2024-01-01..2024-01-31\n-20231231\n20230101-\n"
         "2023-05-01 to 2023-05-02\n");
  std::vector<std::string> got;
  for (const auto& r : s.rows) got.push_back(r.keys[0].second);
  EXPECT_EQ(got, (std::vector<std::string>{"20240229", "20240101-20240131", "20240101-20240131", "-20231231",
                                           "20230101-", "20230501-20230502"}));
}

TEST(ImportSheet, RefusalsNameLineAndColumn) {
  SheetError e = Bad("Accession,Colour\nA1,red\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_EQ(e.column, 2);
  EXPECT_NE(e.message.find("line 1, column 2 (Colour): unknown column"), std::string::npos) << e.message;

  e = Bad("Accession,Study Date\nA1,20240101\nA2,2023-02-29\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 2);
  EXPECT_NE(e.message.find("'2023-02-29' is not a date"), std::string::npos) << e.message;

  e = Bad("Accession,Study Date\nA1,01/02/2024\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 2);

  e = Bad("Accession,Subject\nA1,S1\nA2,S2,extra\n");
  EXPECT_EQ(e.line, 3);
  EXPECT_EQ(e.column, 3);
  EXPECT_NE(e.message.find("3 fields, the header names 2 columns"), std::string::npos) << e.message;

  e = Bad("Project,Subject\nP,S\n");
  EXPECT_EQ(e.line, 1);
  EXPECT_NE(e.message.find("no column can find a study"), std::string::npos) << e.message;

  e = Bad("Accession,Subject\nA1,S1\n\"A2,S2\n");
  EXPECT_EQ(e.line, 3);  // where the quote that is never closed opens
  EXPECT_EQ(e.column, 1);
  EXPECT_NE(e.message.find("not closed"), std::string::npos) << e.message;

  e = Bad("Accession,Subject\nA\"1,S1\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 1);

  e = Bad("Accession,Subject\n,S1\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_NE(e.message.find("no value to find a study"), std::string::npos) << e.message;

  e = Bad("Accession,Subject\nA1,Jane Doe\n");
  EXPECT_EQ(e.column, 2);
  EXPECT_NE(e.message.find("label"), std::string::npos) << e.message;

  e = Bad("Study Instance UID\n1.2.abc\n");
  EXPECT_EQ(e.line, 2);
  EXPECT_EQ(e.column, 1);

  e = Bad("Patient Name\nM\xFCller\n");  // Latin-1, not UTF-8
  EXPECT_NE(e.message.find("UTF-8"), std::string::npos) << e.message;

  e = Bad("Accession,Accession Number\nA,B\n");
  EXPECT_EQ(e.column, 2);
  EXPECT_NE(e.message.find("twice"), std::string::npos);

  e = Bad("");
  EXPECT_EQ(e.line, 1);
  e = Bad("Accession\n\n");
  EXPECT_NE(e.message.find("no rows"), std::string::npos);
}

TEST(ImportSheet, LoneCarriageReturnsEndLinesAndBlankFilesAreRefused) {
  auto s = Ok("Accession\rA1\rA2\r\rA3");
  ASSERT_EQ(s.rows.size(), 3u);
  EXPECT_EQ(s.rows[0].line, 2);
  EXPECT_EQ(s.rows[1].line, 3);
  EXPECT_EQ(s.rows[2].line, 5);
  for (const char* blank : {"\n", "\r\n\r\n", "\xEF\xBB\xBF\r\n", " \t\n"}) {
    SheetError e = Bad(blank);
    EXPECT_EQ(e.line, 1) << e.message;
    EXPECT_NE(e.message.find("empty"), std::string::npos) << e.message;
  }
}

TEST(ImportSheet, OnlyWellFormedUtf8) {
  EXPECT_TRUE(ParseImportSheet("Patient Name\nM\xC3\xBCller\n"));  // ü
  for (const char* bad :
       {"\xC0\xAF", "\xE0\x80\xAF", "\xED\xA0\x80", "\xF4\x90\x80\x80", "\xF5\x80\x80\x80", "\xE2\x82"}) {
    SheetError e = Bad(std::string("Patient Name\nX") + bad + "\n");
    EXPECT_EQ(e.line, 2) << e.message;
    EXPECT_NE(e.message.find("UTF-8"), std::string::npos) << e.message;
  }
}

TEST(ImportSheet, QuotedLineBreaksKeepLineNumbers) {
  auto s = Ok("Patient Name,Accession\n\"Doe\nJohn\",A1\nX,A2\n");
  ASSERT_EQ(s.rows.size(), 2u);
  EXPECT_EQ(s.rows[0].line, 3);
  EXPECT_EQ(s.rows[1].line, 4);
  SheetError e = Ok("Accession,\nA1,\n").rows.empty() ? SheetError{} : Bad("Accession,\nA1,x\n");
  EXPECT_EQ(e.column, 2);
  EXPECT_NE(e.message.find("without a header"), std::string::npos) << e.message;
}

}  // namespace
}  // namespace pb
