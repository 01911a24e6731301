#include "config/settings.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fmt/format.h>

namespace pb {
namespace {

TEST(Settings, ParsesTheContractExample) {
  auto s = ParseSettings(R"(
[server]
data_dir = "/tmp/pb"
http_listen = "127.0.0.1:9090"
ae_title = "PACSBRIDGE"

[database]
url = "sqlite:/tmp/pb/index.db"

[auth]
admin_password = "change-me"

[[receivers]]
ae_title = "PACSBRIDGE"
port = 8104
bind = "0.0.0.0"

[[nodes]]
name = "hospital-pacs"
type = "dimse"
ae_title = "ORTHANC"
host = "127.0.0.1"
port = 4242
queryable = true
)",
                         "pb.toml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->http_port, 9090);
  EXPECT_EQ(s->DatabasePath(), "/tmp/pb/index.db");
  EXPECT_EQ(*s->admin_password, "change-me");
  ASSERT_EQ(s->receivers.size(), 1u);
  EXPECT_EQ(s->receivers[0].json["port"], 8104);
  ASSERT_EQ(s->nodes.size(), 1u);
  EXPECT_EQ(s->nodes[0].json["name"], "hospital-pacs");
  EXPECT_EQ(s->nodes[0].source, "pb.toml:18");
  EXPECT_EQ(s->nodes[0].key_lines.at("port"), 23);
}

TEST(Settings, DicomwebServerSettings) {
  auto s = ParseSettings(R"(
[dicomweb]
public_root = "https://pacs.example.org/pb/dicom-web/"
cors_origins = ["https://viewer.example.org:3000", "*"]
stow_receiver = "RESEARCH"
)",
                         "t.toml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->dicomweb_public_root, "https://pacs.example.org/pb/dicom-web");  // trailing slash dropped
  EXPECT_EQ(s->dicomweb_cors_origins, (std::vector<std::string>{"https://viewer.example.org:3000", "*"}));
  EXPECT_EQ(s->dicomweb_stow_receiver, "RESEARCH");
}

TEST(Settings, RefusesDicomwebRootsThatAreNotHttpUrls) {
  for (const char* bad : {"ftp://host/dicom-web", "pacs.example.org/dicom-web", "https://user:pw@host/dicom-web",
                          "https://host/dicom-web?x=1"}) {
    auto s = ParseSettings(fmt::format("[dicomweb]\npublic_root = \"{}\"\n", bad), "t.toml");
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message.find("t.toml:2: dicomweb.public_root"), std::string::npos) << s.error().message;
  }
}

TEST(Settings, DatabaseUrlIsSqliteOrAPostgresUrlLibpqReads) {
  for (const char* good : {"postgresql://pb:secret@127.0.0.1:5432/pacsbridge", "postgres://db.example.org/pb",
                           "postgresql://pb@/pacsbridge?host=/run/postgresql", "sqlite:/var/lib/pb/index.db"}) {
    auto s = ParseSettings(fmt::format("[database]\nurl = \"{}\"\n", good), "t.toml");
    ASSERT_TRUE(s) << good << ": " << s.error().message;
    EXPECT_EQ(s->IsPostgres(), std::string(good).rfind("postgres", 0) == 0) << good;
  }
  // libpq's own reading decides: an unknown parameter, a broken percent-encoding.
  for (const char* bad : {"postgresql://pb:secret@host/db?colour=red", "postgresql://pb:se%zzcret@host/db",
                          "mysql://pb@host/db", "index.db"}) {
    auto s = ParseSettings(fmt::format("[database]\nurl = \"{}\"\n", bad), "t.toml");
    ASSERT_FALSE(s) << bad;
    EXPECT_NE(s.error().message.find("t.toml:2: database.url"), std::string::npos) << s.error().message;
    EXPECT_EQ(s.error().message.find("cret"), std::string::npos) << s.error().message;  // the password
  }
}

TEST(Settings, InstanceIdIsAShortNameOrTheHostName) {
  auto s = ParseSettings("[server]\ninstance_id = \"gateway-2\"\n", "t.toml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->InstanceId(), "gateway-2");
  char host[256] = {};
  ASSERT_EQ(gethostname(host, sizeof(host) - 1), 0);
  EXPECT_EQ(DefaultSettings().InstanceId(), host);
  for (const char* bad : {"gate way", "a/b", "\u00e9", ".", ".."}) {
    auto r = ParseSettings(fmt::format("[server]\ninstance_id = \"{}\"\n", bad), "t.toml");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("t.toml:2: server.instance_id"), std::string::npos) << r.error().message;
  }
}

TEST(Settings, JobLeaseSeconds) {
  EXPECT_EQ(DefaultSettings().job_lease_seconds, 30);
  auto s = ParseSettings("[jobs]\nlease_seconds = 5\n", "t.toml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->job_lease_seconds, 5);
  for (const char* bad : {"2", "3601"}) {
    auto r = ParseSettings(fmt::format("[jobs]\nlease_seconds = {}\n", bad), "t.toml");
    ASSERT_FALSE(r) << bad;
    EXPECT_NE(r.error().message.find("t.toml:2: jobs.lease_seconds"), std::string::npos) << r.error().message;
  }
}

TEST(Settings, RefusesCorsOriginsWithAPath) {
  auto s = ParseSettings("[dicomweb]\ncors_origins = [\"https://viewer.example.org/app\"]\n", "t.toml");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("dicomweb.cors_origins"), std::string::npos) << s.error().message;
  EXPECT_FALSE(ParseSettings("[dicomweb]\ncors_origins = \"*\"\n", "t.toml"));
  EXPECT_FALSE(ParseSettings("[dicomweb]\ncors = [\"*\"]\n", "t.toml"));
}

TEST(Settings, UnknownKeyNamesKeyAndLine) {
  auto s = ParseSettings("[server]\ndata_dir = \"x\"\ncolour = 1\n", "bad.toml");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("bad.toml:3"), std::string::npos) << s.error().message;
  EXPECT_NE(s.error().message.find("colour"), std::string::npos);
}

TEST(Settings, SyntaxErrorNamesLine) {
  auto s = ParseSettings("[server]\n\ndata_dir = \n", "bad.toml");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("bad.toml:3"), std::string::npos) << s.error().message;
}

TEST(Settings, WrongTypeNamesKeyAndLine) {
  auto s = ParseSettings("[server]\nfsync = \"yes\"\n", "bad.toml");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("bad.toml:2: server.fsync"), std::string::npos) << s.error().message;
}

TEST(Settings, LogFormat) {
  EXPECT_EQ(DefaultSettings().log_format, "text");
  auto json = ParseSettings("[server]\nlog_format = \"json\"\n", "t.toml");
  ASSERT_TRUE(json) << json.error().message;
  EXPECT_EQ(json->log_format, "json");
  auto bad = ParseSettings("[server]\n\nlog_format = \"JSON\"\n", "t.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("t.toml:3: server.log_format"), std::string::npos) << bad.error().message;
}

TEST(Settings, RefusesInvalidListenAddress) {
  auto s = ParseSettings("[server]\nhttp_listen = \"localhost\"\n", "bad.toml");
  ASSERT_FALSE(s);
  EXPECT_NE(s.error().message.find("http_listen"), std::string::npos);
}

TEST(Settings, DefaultsHaveOneReceiver) {
  Settings s = DefaultSettings();
  ASSERT_EQ(s.receivers.size(), 1u);
  EXPECT_EQ(s.receivers[0].json["ae_title"], "PACSBRIDGE");
  EXPECT_EQ(s.receivers[0].json["port"], 8104);
  EXPECT_EQ(s.http_host, "127.0.0.1");
  EXPECT_EQ(s.DatabasePath(), std::filesystem::path("var") / "index.db");
}

TEST(ListenAddress, ParsesIpv6) {
  auto r = ParseListenAddress("[::1]:8080", "x");
  ASSERT_TRUE(r);
  EXPECT_EQ(r->first, "::1");
  EXPECT_EQ(r->second, 8080);
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST(Settings, StrictAndFreeDiskThreshold) {
  auto d = ParseSettings("[server]\n", "a.toml");
  ASSERT_TRUE(d) << d.error().message;
  EXPECT_FALSE(d->strict);
  EXPECT_EQ(d->min_free_disk_mb, 500);
  auto s = ParseSettings("[server]\nstrict = true\nmin_free_disk_mb = 2048\n", "a.toml");
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_TRUE(s->strict);
  EXPECT_EQ(s->min_free_disk_mb, 2048);
  auto bad = ParseSettings("[server]\nmin_free_disk_mb = -1\n", "bad.toml");
  ASSERT_FALSE(bad);
  EXPECT_NE(bad.error().message.find("bad.toml:2: server.min_free_disk_mb"), std::string::npos) << bad.error().message;
}

}  // namespace
}  // namespace pb
