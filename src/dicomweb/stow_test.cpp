#include "dicomweb/stow.h"

#include <unistd.h>

#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/text.h"
#include "dicomweb/multipart.h"

namespace pb::dicomweb {
namespace {

namespace fs = std::filesystem;

std::string LowerNoSpace(const std::string& s) {
  std::string out;
  for (char c : AsciiLower(s)) {
    if (c != ' ') out += c;
  }
  return out;
}

// A temp dir with three "instances" whose bytes are known, including bytes that look like the
// multipart syntax (CR LF, dashes) and NULs.
class StowBodyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pb_stow_test_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    contents_.push_back(std::string(128, '\0') + "DICM" + std::string("\x02\x00\x00\x00UL\x04\x00", 8) + "\r\n--x\r\n");
    std::string big;
    for (int i = 0; i < 300000; ++i) big += static_cast<char>((i * 7919) & 0xff);
    contents_.push_back(big);
    contents_.push_back("");  // an empty file is still a part
    for (size_t i = 0; i < contents_.size(); ++i) {
      paths_.push_back((dir_ / ("i" + std::to_string(i) + ".dcm")).string());
      std::ofstream(paths_.back(), std::ios::binary) << contents_[i];
    }
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path dir_;
  std::vector<std::string> paths_;
  std::vector<std::string> contents_;
};

struct StowPart {
  MultipartParser::Headers headers;
  std::string data;
};

// Reads the whole body with reads of at most `chunk` bytes.
Result<std::string> ReadAll(StowBody& body, size_t chunk) {
  std::string out;
  std::vector<char> buf(chunk);
  for (;;) {
    auto got = body.Read(buf.data(), buf.size());
    if (!got) return tl::unexpected(got.error());
    if (*got == 0) return out;
    EXPECT_LE(*got, chunk);
    out.append(buf.data(), *got);
  }
}

// Splits `body` with the module's own parser, as a server would.
std::vector<StowPart> Split(const std::string& content_type, const std::string& body) {
  std::vector<StowPart> parts;
  auto boundary = MultipartBoundary(content_type);
  EXPECT_TRUE(boundary.has_value()) << content_type;
  if (!boundary) return parts;
  MultipartParser::Handlers h;
  h.on_part = [&](int, const MultipartParser::Headers& headers) -> Result<void> {
    parts.push_back({headers, ""});
    return {};
  };
  h.on_data = [&](std::string_view d) -> Result<void> {
    parts.back().data.append(d);
    return {};
  };
  h.on_part_end = []() -> Result<void> { return {}; };
  MultipartParser p(*boundary, h);
  auto fed = p.Feed(body);
  EXPECT_TRUE(fed.has_value()) << fed.error().message;
  auto done = p.Finish();
  EXPECT_TRUE(done.has_value()) << done.error().message;
  return parts;
}

TEST_F(StowBodyTest, SizeIsExactAndPartsAreTheFiles) {
  StowBody body(paths_, NewBoundary());
  ASSERT_TRUE(body.Open().has_value());
  const std::string type = body.content_type();
  EXPECT_EQ(AsciiLower(type).rfind("multipart/related", 0), 0u) << type;
  EXPECT_NE(type.find("type=\"application/dicom\""), std::string::npos) << type;

  for (size_t chunk : {size_t{1}, size_t{7}, size_t{1} << 20}) {
    ASSERT_TRUE(body.Rewind().has_value());
    auto all = ReadAll(body, chunk);
    ASSERT_TRUE(all.has_value()) << all.error().message;
    EXPECT_EQ(static_cast<int64_t>(all->size()), body.size()) << "chunk " << chunk;
    auto parts = Split(type, *all);
    ASSERT_EQ(parts.size(), 3u) << "chunk " << chunk;
    for (size_t i = 0; i < 3; ++i) {
      EXPECT_EQ(parts[i].data, contents_[i]) << "part " << i << ", chunk " << chunk;
      EXPECT_EQ(parts[i].headers["content-type"], "application/dicom");
      EXPECT_EQ(parts[i].headers["content-length"], std::to_string(contents_[i].size()));
    }
  }
}

TEST_F(StowBodyTest, RewindGivesTheSameBytesAgain) {
  StowBody body(paths_, "b0undary");
  ASSERT_TRUE(body.Open().has_value());
  std::vector<char> first(1000);
  auto got = body.Read(first.data(), first.size());  // stop half way through the second file
  ASSERT_TRUE(got.has_value());
  ASSERT_TRUE(body.Rewind().has_value());
  auto again = ReadAll(body, 4096);
  ASSERT_TRUE(again.has_value());
  ASSERT_TRUE(body.Rewind().has_value());
  auto third = ReadAll(body, 65536);
  ASSERT_TRUE(third.has_value());
  EXPECT_EQ(*again, *third);
  EXPECT_EQ(again->substr(0, *got), std::string(first.data(), *got));
  EXPECT_EQ(static_cast<int64_t>(again->size()), body.size());
}

TEST_F(StowBodyTest, BoundaryDelimitsEachPart) {
  // RFC 2046 5.1.1: "--boundary" CRLF headers CRLF CRLF data, CRLF "--boundary--" at the end.
  StowBody body({paths_[0]}, "XyZ");
  ASSERT_TRUE(body.Open().has_value());
  auto all = ReadAll(body, 100);
  ASSERT_TRUE(all.has_value());
  EXPECT_EQ(*all, "--XyZ\r\nContent-Type: application/dicom\r\nContent-Length: " + std::to_string(contents_[0].size()) +
                      "\r\n\r\n" + contents_[0] + "\r\n--XyZ--\r\n");
}

TEST_F(StowBodyTest, MissingFileIsNamedAtOpen) {
  const std::string missing = (dir_ / "gone.dcm").string();
  StowBody body({paths_[0], missing}, NewBoundary());
  auto opened = body.Open();
  ASSERT_FALSE(opened.has_value());
  EXPECT_NE(opened.error().message.find(missing), std::string::npos) << opened.error().message;
}

TEST_F(StowBodyTest, FileThatShrankAfterOpenIsAnErrorNamingIt) {
  StowBody body(paths_, NewBoundary());
  ASSERT_TRUE(body.Open().has_value());
  fs::resize_file(paths_[1], 1000);
  auto all = ReadAll(body, 4096);
  ASSERT_FALSE(all.has_value()) << "a body shorter than its Content-Length was produced";
  EXPECT_EQ(all.error().code, Code::kIoError);
  EXPECT_NE(all.error().message.find(paths_[1]), std::string::npos) << all.error().message;
}

TEST_F(StowBodyTest, FileThatGrewAfterOpenIsAnErrorNamingIt) {
  StowBody body(paths_, NewBoundary());
  ASSERT_TRUE(body.Open().has_value());
  std::ofstream(paths_[0], std::ios::binary | std::ios::app) << "more bytes than Content-Length announced";
  auto all = ReadAll(body, 4096);
  ASSERT_FALSE(all.has_value()) << "an instance was sent cut to its size at Open()";
  EXPECT_EQ(all.error().code, Code::kIoError);
  EXPECT_NE(all.error().message.find(paths_[0]), std::string::npos) << all.error().message;
}

TEST_F(StowBodyTest, FileRemovedAfterOpenIsAnErrorNamingIt) {
  StowBody body(paths_, NewBoundary());
  ASSERT_TRUE(body.Open().has_value());
  fs::remove(paths_[1]);
  auto all = ReadAll(body, 4096);
  ASSERT_FALSE(all.has_value());
  EXPECT_NE(all.error().message.find(paths_[1]), std::string::npos) << all.error().message;
}

TEST(StowNewBoundary, IsValidAndDiffersEachTime) {
  const std::string a = NewBoundary(), b = NewBoundary();
  EXPECT_NE(a, b);
  // RFC 2046: 1 to 70 characters; ours are plain alphanumerics and '-'.
  EXPECT_LE(a.size(), 70u);
  EXPECT_EQ(a.find_first_not_of("abcdefghijklmnopqrstuvwxyz0123456789-"), std::string::npos) << a;
}

// --- ParseStowResponse (PS3.18 10.5.3, the Store Instances Response Module) ---

TEST(StowResponse, ReferencedInstancesAreStored) {
  const char* body = R"({
    "00081190": {"vr": "UR", "Value": ["http://server/dicom-web/studies/1.2.3"]},
    "00081199": {"vr": "SQ", "Value": [
      {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
       "00081155": {"vr": "UI", "Value": ["1.2.3.4.1"]},
       "00081190": {"vr": "UR", "Value": ["http://server/dicom-web/studies/1.2.3/series/1.2.3.4/instances/1.2.3.4.1"]}},
      {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.2"]},
       "00081155": {"vr": "UI", "Value": ["1.2.3.4.2"]}}
    ]}
  })";
  auto out = ParseStowResponse(body);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  ASSERT_EQ(out->size(), 2u);
  EXPECT_EQ(out->at("1.2.3.4.1").status, dicom::SendStatus::kSuccess);
  EXPECT_EQ(out->at("1.2.3.4.2").status, dicom::SendStatus::kSuccess);
}

TEST(StowResponse, WarningReasonMakesAWarning) {
  // WarningReason (0008,1196) US 0xB000: coercion of data elements.
  const char* body = R"({
    "00081199": {"vr": "SQ", "Value": [
      {"00081155": {"vr": "UI", "Value": ["1.2.3.4.1"]},
       "00081196": {"vr": "US", "Value": [45056]}},
      {"00081155": {"vr": "UI", "Value": ["1.2.3.4.2"]}}
    ]}
  })";
  auto out = ParseStowResponse(body);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  const auto& w = out->at("1.2.3.4.1");
  EXPECT_EQ(w.status, dicom::SendStatus::kWarning);
  EXPECT_EQ(w.dimse_status, 0xB000);
  EXPECT_NE(AsciiLower(w.reason).find("coercion"), std::string::npos) << w.reason;
  EXPECT_EQ(out->at("1.2.3.4.2").status, dicom::SendStatus::kSuccess);
}

TEST(StowResponse, FailedSopSequenceGivesTheFailureReason) {
  // FailureReason (0008,1197) US 0xA700: refused, out of resources.
  const char* body = R"({
    "00081198": {"vr": "SQ", "Value": [
      {"00081150": {"vr": "UI", "Value": ["1.2.840.10008.5.1.4.1.1.4"]},
       "00081155": {"vr": "UI", "Value": ["1.2.3.9"]},
       "00081197": {"vr": "US", "Value": [42752]}}
    ]},
    "00081199": {"vr": "SQ", "Value": [
      {"00081155": {"vr": "UI", "Value": ["1.2.3.8"]}}
    ]}
  })";
  auto out = ParseStowResponse(body);
  ASSERT_TRUE(out.has_value()) << out.error().message;
  const auto& f = out->at("1.2.3.9");
  EXPECT_EQ(f.status, dicom::SendStatus::kFailed);
  EXPECT_EQ(f.dimse_status, 0xA700);
  // DCMTK's wording is "OutOfResources": compare without spaces.
  EXPECT_NE(LowerNoSpace(f.reason).find("outofresources"), std::string::npos) << f.reason;
  EXPECT_EQ(out->at("1.2.3.8").status, dicom::SendStatus::kSuccess);
}

TEST(StowResponse, FailedWithoutReasonIsStillFailed) {
  auto out =
      ParseStowResponse(R"({"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["9.9"]}}]}})");
  ASSERT_TRUE(out.has_value()) << out.error().message;
  EXPECT_EQ(out->at("9.9").status, dicom::SendStatus::kFailed);
  EXPECT_FALSE(out->at("9.9").reason.empty());
}

TEST(StowResponse, EmptyDataSetNamesNoInstance) {
  auto out = ParseStowResponse("{}");
  ASSERT_TRUE(out.has_value());
  EXPECT_TRUE(out->empty());
}

TEST(StowResponse, GarbageIsAnError) {
  for (const char* body : {"", "<html>Internal Server Error</html>", "[1,2]", "\"ok\"", "{\"00081199\":"}) {
    auto out = ParseStowResponse(body);
    ASSERT_FALSE(out.has_value()) << body;
    EXPECT_EQ(out.error().code, Code::kUnavailable) << body;
  }
}

TEST(StowResponse, WrongJsonTypesAreNotFatal) {
  const char* bodies[] = {
      R"({"00081199": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": [5]}}]}})",
      R"({"00081199": {"vr": "SQ", "Value": "x"}})",
      R"({"00081198": {"vr": "SQ", "Value": [{"00081155": {"vr": "UI", "Value": ["1"]}, "00081197": {"Value": ["A700"]}}]}})",
  };
  for (const char* body : bodies) {
    EXPECT_NO_THROW((void)ParseStowResponse(body)) << body;
  }
}

}  // namespace
}  // namespace pb::dicomweb
