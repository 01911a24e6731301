#include "dicomweb/multipart.h"

#include <gtest/gtest.h>

#include <string>
#include <vector>

namespace pb::dicomweb {
namespace {

using namespace std::string_literals;

struct Part {
  MultipartParser::Headers headers;
  std::string data;
  bool ended = false;
};

struct Parsed {
  std::vector<Part> parts;
  std::string error;  // of Feed or Finish, "" when both succeeded
};

// Feeds `body` in chunks of `chunk` bytes (0: all at once) and collects what the handlers see.
Parsed Parse(const std::string& body, size_t chunk = 0, const std::string& boundary = "XyZ") {
  Parsed out;
  MultipartParser::Handlers h;
  h.on_part = [&](int index, const MultipartParser::Headers& headers) -> Result<void> {
    EXPECT_EQ(index, static_cast<int>(out.parts.size()) + 1);
    out.parts.push_back(Part{headers, "", false});
    return {};
  };
  h.on_data = [&](std::string_view d) -> Result<void> {
    out.parts.back().data.append(d);
    return {};
  };
  h.on_part_end = [&]() -> Result<void> {
    out.parts.back().ended = true;
    return {};
  };
  MultipartParser p(boundary, h);
  if (chunk == 0) chunk = body.size() + 1;
  for (size_t i = 0; i < body.size(); i += chunk) {
    if (auto r = p.Feed(std::string_view(body).substr(i, chunk)); !r) {
      out.error = r.error().message;
      return out;
    }
  }
  if (auto r = p.Finish(); !r) out.error = r.error().message;
  return out;
}

// PS3.18 style: a WADO-RS answer of two instances, with a preamble and an epilogue.
const std::string kTwoParts =
    "this is the preamble\r\n"
    "--XyZ\r\n"
    "Content-Type: application/dicom\r\n"
    "Content-Location: /studies/1/series/2/instances/3\r\n"
    "\r\n"
    "DICM\x00\x01--XyZ not at a line start\r\n-- \r\n"
    "\r\n--XyZ  \t\r\n"
    "content-type:application/dicom; transfer-syntax=1.2.840.10008.1.2.1\r\n"
    "\r\n"
    "second\r\n"
    "\r\n--XyZ--\r\n"
    "epilogue, ignored\r\n"s;  // the s suffix keeps the NUL byte

std::string Boundary(const std::string& content_type) {
  auto b = MultipartBoundary(content_type);
  EXPECT_TRUE(b) << content_type << ": " << b.error().message;
  return b ? *b : "(error)";
}

TEST(MultipartBoundary, ReadsQuotedAndPlainValuesInAnyCase) {
  EXPECT_EQ(Boundary("multipart/related; type=\"application/dicom\"; boundary=abc123"), "abc123");
  EXPECT_EQ(Boundary("Multipart/Related;Boundary=\"a b,c\";type=application/dicom"), "a b,c");
  EXPECT_EQ(Boundary("multipart/related; type=\"application/dicom; x=1\"; BOUNDARY=q"), "q");
}

TEST(MultipartBoundary, RefusesWhatIsNotAMultipartWithAValidBoundary) {
  auto json = MultipartBoundary("application/dicom+json");
  ASSERT_FALSE(json);
  EXPECT_NE(json.error().message.find("not a multipart type"), std::string::npos);
  auto none = MultipartBoundary("multipart/related; type=\"application/dicom\"");
  ASSERT_FALSE(none);
  EXPECT_NE(none.error().message.find("names no boundary"), std::string::npos);
  EXPECT_FALSE(MultipartBoundary("multipart/related; boundary="));
  // RFC 2046 allows 70 at most; Orthanc 1.10 sends 73, so up to 200 are taken.
  EXPECT_TRUE(MultipartBoundary("multipart/related; boundary=" + std::string(73, 'a')));
  EXPECT_FALSE(MultipartBoundary("multipart/related; boundary=" + std::string(201, 'a')));
  EXPECT_FALSE(MultipartBoundary("multipart/related; boundary=\"ends with space \""));
  EXPECT_FALSE(MultipartBoundary("multipart/related; boundary=bad\x01"));
  EXPECT_FALSE(MultipartBoundary("multipart/related; boundary=\"a;b\""));  // ';' is not a bchar
}

TEST(MultipartParser, SplitsPartsWithTheirHeadersAndExactBytes) {
  Parsed p = Parse(kTwoParts);
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.parts.size(), 2u);
  EXPECT_EQ(p.parts[0].headers.at("content-type"), "application/dicom");
  EXPECT_EQ(p.parts[0].headers.at("content-location"), "/studies/1/series/2/instances/3");
  EXPECT_EQ(p.parts[0].data, std::string("DICM\x00\x01--XyZ not at a line start\r\n-- \r\n", 38));
  EXPECT_EQ(p.parts[1].headers.at("content-type"), "application/dicom; transfer-syntax=1.2.840.10008.1.2.1");
  EXPECT_EQ(p.parts[1].data, "second\r\n");
  EXPECT_TRUE(p.parts[0].ended && p.parts[1].ended);
}

TEST(MultipartParser, GivesTheSameResultWhateverTheChunkSize) {
  const Parsed whole = Parse(kTwoParts);
  for (size_t chunk : {1, 2, 3, 5, 7, 8, 9, 13, 64}) {
    Parsed p = Parse(kTwoParts, chunk);
    ASSERT_EQ(p.error, "") << chunk;
    ASSERT_EQ(p.parts.size(), whole.parts.size()) << chunk;
    for (size_t i = 0; i < p.parts.size(); ++i) {
      EXPECT_EQ(p.parts[i].data, whole.parts[i].data) << "chunk " << chunk << " part " << i;
      EXPECT_EQ(p.parts[i].headers, whole.parts[i].headers) << chunk;
    }
  }
}

TEST(MultipartParser, AcceptsABodyThatOpensWithItsDelimiterAndAPartWithoutHeaders) {
  Parsed p = Parse("--XyZ\r\n\r\nraw\r\n--XyZ--");
  ASSERT_EQ(p.error, "");
  ASSERT_EQ(p.parts.size(), 1u);
  EXPECT_TRUE(p.parts[0].headers.empty());
  EXPECT_EQ(p.parts[0].data, "raw");
}

TEST(MultipartParser, NeverHoldsALargePartInMemory) {
  // 8 MB of data fed in 64 KB chunks: each chunk is handed on, only a delimiter's length stays.
  const std::string chunk(64 * 1024, 'd');
  size_t seen = 0, largest_call = 0;
  MultipartParser::Handlers h;
  h.on_data = [&](std::string_view d) -> Result<void> {
    seen += d.size();
    largest_call = std::max(largest_call, d.size());
    return {};
  };
  MultipartParser p("XyZ", h);
  ASSERT_TRUE(p.Feed("--XyZ\r\nContent-Type: application/dicom\r\n\r\n"));
  for (int i = 0; i < 128; ++i) {
    ASSERT_TRUE(p.Feed(chunk));
    // Everything fed so far is handed on, but what could begin a delimiter ("\r\n--XyZ").
    EXPECT_GE(seen + 7, (i + 1) * chunk.size()) << "after chunk " << i;
  }
  ASSERT_TRUE(p.Feed("\r\n--XyZ--\r\n"));
  ASSERT_TRUE(p.Finish());
  EXPECT_EQ(seen, 128 * chunk.size());
  EXPECT_LE(largest_call, chunk.size() + 8);
}

// Parts of 20 KB whose data holds near-delimiters ("\r\n--XyZ" cut short, "\r\n--" alone).
std::string BodyOfLargeParts(int parts, std::vector<std::string>& data) {
  std::string body = "--XyZ\r\n";
  for (int i = 0; i < parts; ++i) {
    std::string d;
    for (int k = 0; d.size() < 20 * 1024; ++k) {
      d += static_cast<char>('a' + (k + i) % 26);
      if (k % 997 == 0) d += "\r\n--XyY";
      if (k % 1499 == 0) d += "\r\n--Xy\r\n--";
    }
    data.push_back(d);
    body += "Content-Type: application/dicom\r\n\r\n" + d + (i + 1 < parts ? "\r\n--XyZ\r\n" : "\r\n--XyZ--\r\n");
  }
  return body;
}

// `body` parsed in chunks of sizes around its slices and parts (0: whole) gives `data`, each
// part complete, whatever the size. Returns what each size parsed.
std::vector<Parsed> ExpectTheSameWhateverTheChunkSize(const std::string& body, const std::vector<std::string>& data) {
  std::vector<Parsed> out;
  for (size_t chunk : {1, 6, 7, 8, 4095, 4096, 4097, 20 * 1024 + 40, 65536, 0}) {
    Parsed p = Parse(body, chunk);
    EXPECT_EQ(p.error, "") << chunk;
    EXPECT_EQ(p.parts.size(), data.size()) << chunk;
    for (size_t i = 0; i < data.size() && i < p.parts.size(); ++i) {
      EXPECT_TRUE(p.parts[i].data == data[i]) << "chunk " << chunk << " part " << i;
      EXPECT_TRUE(p.parts[i].ended);
    }
    out.push_back(std::move(p));
  }
  return out;
}

TEST(MultipartParser, LargePartsComeOutTheSameWhateverTheChunkSize) {
  std::vector<std::string> data;
  ExpectTheSameWhateverTheChunkSize(BodyOfLargeParts(4, data), data);
}

// Feeds `body` as one chunk: how many data bytes were handed on as views into that chunk, and
// how many through a copy. Every data byte must be handed on.
std::pair<size_t, size_t> InChunkAndCopied(const std::string& body, const std::vector<std::string>& data) {
  size_t in_chunk = 0, copied = 0;
  MultipartParser::Handlers h;
  h.on_data = [&](std::string_view d) -> Result<void> {
    const bool inside = d.data() >= body.data() && d.data() + d.size() <= body.data() + body.size();
    (inside ? in_chunk : copied) += d.size();
    return {};
  };
  MultipartParser p("XyZ", h);
  EXPECT_TRUE(p.Feed(body));
  EXPECT_TRUE(p.Finish());
  size_t total = 0;
  for (const auto& d : data) total += d.size();
  EXPECT_EQ(in_chunk + copied, total);
  return {in_chunk, copied};
}

TEST(MultipartParser, HandsOnAPartsDataFromTheCallersChunkWithoutCopying) {
  // One chunk holding four parts: all but a few KB around each delimiter is handed on as a view
  // into that chunk, not through a copy (a WADO-RS answer's 512 KB reads hold a part boundary).
  std::vector<std::string> data;
  const std::string body = BodyOfLargeParts(4, data);
  EXPECT_LE(InChunkAndCopied(body, data).second, 4u * 4096)
      << "at most a slice per part went through the parser's buffer";
}

// Parts that give their Content-Length, as Orthanc writes them (RFC 2046 does not ask for it;
// many servers send it): the same 20 KB parts with near-delimiters, and an empty part.
std::string BodyOfCountedParts(std::vector<std::string>& data) {
  std::string body = "--XyZ\r\n";
  BodyOfLargeParts(3, data);
  data.push_back("");
  for (size_t i = 0; i < data.size(); ++i) {
    body += "Content-Type: application/dicom\r\nContent-Length: " + std::to_string(data[i].size()) +
            "\r\nMIME-Version: 1.0\r\n\r\n" + data[i] + (i + 1 < data.size() ? "\r\n--XyZ\r\n" : "\r\n--XyZ--\r\n");
  }
  return body;
}

TEST(MultipartParser, TakesAPartWithAContentLengthByItsLengthWhateverTheChunkSize) {
  std::vector<std::string> data;
  const std::string body = BodyOfCountedParts(data);
  for (const Parsed& p : ExpectTheSameWhateverTheChunkSize(body, data)) {
    for (size_t i = 0; i < p.parts.size(); ++i) {
      EXPECT_EQ(p.parts[i].headers.at("content-length"), std::to_string(data[i].size()));
    }
  }
}

TEST(MultipartParser, DoesNotSearchACountedPartsDataForItsDelimiter) {
  // The length decides: the delimiter's text inside a counted part is data. Without the length,
  // the same bytes are two parts.
  const std::string inner = "abc\r\n--XyZ\r\n\r\ndef";
  Parsed counted =
      Parse("--XyZ\r\nContent-Length: " + std::to_string(inner.size()) + "\r\n\r\n" + inner + "\r\n--XyZ--");
  ASSERT_EQ(counted.error, "");
  ASSERT_EQ(counted.parts.size(), 1u);
  EXPECT_EQ(counted.parts[0].data, inner);
  Parsed searched = Parse("--XyZ\r\n\r\n" + inner + "\r\n--XyZ--");
  ASSERT_EQ(searched.error, "");
  ASSERT_EQ(searched.parts.size(), 2u);
  EXPECT_EQ(searched.parts[0].data, "abc");
  EXPECT_EQ(searched.parts[1].data, "def");
}

TEST(MultipartParser, AContentLengthThatDoesNotEndAtADelimiterIsAnErrorNamingThePart) {
  for (const char* length : {"4", "6", "60"}) {
    for (size_t chunk : {1, 3, 0}) {
      Parsed p = Parse(std::string("--XyZ\r\n\r\nfirst\r\n--XyZ\r\nContent-Length: ") + length +
                           "\r\n\r\nhello\r\n--XyZ--\r\n" + std::string(80, 'x'),
                       chunk);
      EXPECT_NE(p.error.find(std::string("part 2: its Content-Length (") + length + ") does not end at a boundary"),
                std::string::npos)
          << length << " chunk " << chunk << ": " << p.error;
      ASSERT_GE(p.parts.size(), 1u);
      EXPECT_TRUE(p.parts[0].ended);
      if (p.parts.size() > 1) {
        EXPECT_FALSE(p.parts[1].ended) << "the wrong part is never complete";
      }
    }
  }
}

TEST(MultipartParser, AContentLengthThatIsNotANumberIsLeftAloneAndTheDelimiterSearchedFor) {
  for (const char* length : {"5x", "-5", "", "0x5", "1234567890123456"}) {
    Parsed p = Parse(std::string("--XyZ\r\nContent-Length: ") + length + "\r\n\r\nhello\r\n--XyZ--");
    ASSERT_EQ(p.error, "") << length;
    ASSERT_EQ(p.parts.size(), 1u) << length;
    EXPECT_EQ(p.parts[0].data, "hello") << length;
  }
}

TEST(MultipartParser, ATruncatedCountedPartIsAnErrorNamingWhere) {
  EXPECT_NE(
      Parse("--XyZ\r\nContent-Length: 10\r\n\r\nhalf").error.find("part 1: the body ended inside its data (truncated)"),
      std::string::npos);
  EXPECT_NE(Parse("--XyZ\r\nContent-Length: 4\r\n\r\nhalf\r\n--X")
                .error.find("part 1: the body ended after its data, before its boundary (truncated)"),
            std::string::npos);
}

TEST(MultipartParser, HandsOnACountedPartsDataFromTheCallersChunkWithoutCopying) {
  std::vector<std::string> data;
  const std::string body = BodyOfCountedParts(data);
  EXPECT_LE(InChunkAndCopied(body, data).second, data.size() * 4096)
      << "at most a slice per part went through the parser's buffer";
}

TEST(MultipartParser, ATruncatedBodyIsAnErrorNamingWhere) {
  EXPECT_NE(Parse("--XyZ\r\nContent-Type: app").error.find("part 1: the body ended inside its headers"),
            std::string::npos);
  EXPECT_NE(Parse("--XyZ\r\n\r\nhalf of a da").error.find("part 1: the body ended inside its data (truncated)"),
            std::string::npos);
  EXPECT_NE(Parse("--XyZ\r\n\r\na\r\n--XyZ\r\n\r\nb\r\n--XyZ")
                .error.find("the body ended after part 2 without the closing boundary"),
            std::string::npos);
}

TEST(MultipartParser, AWrongOrMissingBoundaryIsAnError) {
  EXPECT_NE(Parse(kTwoParts, 0, "other").error.find("no part: the body never contains the boundary '--other'"),
            std::string::npos);
  EXPECT_NE(Parse("").error.find("no part"), std::string::npos);
  EXPECT_NE(Parse("--XyZ--\r\n").error.find("no part: the body holds only its closing boundary"), std::string::npos);
  EXPECT_NE(Parse("--XyZjunk\r\n").error.find("the boundary is not followed by a line break"), std::string::npos);
}

TEST(MultipartParser, RefusesEndlessOrMalformedHeaders) {
  std::string endless = "--XyZ\r\nX-Long: " + std::string(MultipartParser::kMaxHeaderBytes + 10, 'h');
  Parsed p = Parse(endless, 1000);
  EXPECT_NE(p.error.find("part 1: headers longer than 16384 bytes"), std::string::npos) << p.error;
  EXPECT_NE(Parse("--XyZ\r\nno colon here\r\n\r\nx\r\n--XyZ--").error.find("part 1: malformed header line"),
            std::string::npos);
  Parsed folded = Parse("--XyZ\r\nX-A: one\r\n two\r\n\r\nx\r\n--XyZ--");
  ASSERT_EQ(folded.error, "");
  EXPECT_EQ(folded.parts[0].headers.at("x-a"), "one two");
}

TEST(MultipartParser, AHandlerErrorStopsTheParserForGood) {
  MultipartParser::Handlers h;
  h.on_part = [](int index, const MultipartParser::Headers& headers) -> Result<void> {
    if (headers.count("content-type") && headers.at("content-type") != "application/dicom") {
      return pb::Fail(Code::kInvalidArgument, "part " + std::to_string(index) + " is not DICOM");
    }
    return {};
  };
  MultipartParser p("XyZ", h);
  auto r = p.Feed("--XyZ\r\nContent-Type: text/html\r\n\r\n<html>");
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().message, "part 1 is not DICOM");
  EXPECT_FALSE(p.Feed("more"));
  EXPECT_FALSE(p.Finish());
}

TEST(MultipartParser, IgnoresWhatFollowsTheClosingDelimiter) {
  Parsed p = Parse("--XyZ\r\n\r\nx\r\n--XyZ--\r\n--XyZ\r\n\r\nnot a part\r\n--XyZ--");
  ASSERT_EQ(p.error, "");
  EXPECT_EQ(p.parts.size(), 1u);
}

}  // namespace
}  // namespace pb::dicomweb
