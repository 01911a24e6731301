#include "core/url.h"

#include <gtest/gtest.h>

namespace pb {
namespace {

std::string Why(const std::string& url) {
  auto r = ValidateBaseUrl(url, "url");
  return r ? "" : r.error().message;
}

TEST(ValidateBaseUrl, TakesTheRootsOfCommonArchives) {
  for (const char* good : {"http://orthanc:8042/dicom-web/", "http://host:8080/dcm4chee-arc/aets/DCM4CHEE/rs/",
                           "https://pacs.example.org/dicomweb", "http://127.0.0.1:8042/dicom-web",
                           "http://[::1]:8042/dicom-web/", "  https://pacs/dicom-web  "}) {
    auto r = ValidateBaseUrl(good, "url");
    ASSERT_TRUE(r) << good << ": " << r.error().message;
  }
  EXPECT_EQ(*ValidateBaseUrl("  https://pacs/dicom-web  ", "url"), "https://pacs/dicom-web");
}

TEST(ValidateBaseUrl, RefusesWhatIsNotAnHttpRootAndSaysWhy) {
  EXPECT_NE(Why("pacs/dicom-web").find("does not start with http:// or https://"), std::string::npos)
      << Why("pacs/dicom-web");
  EXPECT_NE(Why("ftp://pacs/dicom-web").find("does not start with http:// or https://"), std::string::npos);
  EXPECT_NE(Why("http://pacs:99999/dicom-web").find("invalid port"), std::string::npos) << Why("http://pacs:99999/x");
  EXPECT_NE(Why("http://").find("url 'http://'"), std::string::npos) << Why("http://");
  EXPECT_NE(Why("http://pacs/dicom-web?x=1").find("has a query"), std::string::npos);
  EXPECT_NE(Why("http://pacs/dicom-web#top").find("has a fragment"), std::string::npos);
  EXPECT_NE(Why("").find("url is required"), std::string::npos);
  // The error shows the example roots, so a person knows what to write.
  EXPECT_NE(Why("pacs").find("http://host:8042/dicom-web/ (Orthanc)"), std::string::npos);
}

TEST(ValidateBaseUrl, CredentialsBelongInAuthAndAreNeverEchoed) {
  std::string why = Why("https://admin:s3cret@pacs/dicom-web");
  EXPECT_NE(why.find("put the user name and password in auth"), std::string::npos) << why;
  EXPECT_EQ(why.find("s3cret"), std::string::npos) << why;
  // Whatever else is wrong with the URL, the password stays out of the message.
  for (const char* url : {"https://admin:s3cret@pacs:99999/dicom-web", "ftp://admin:s3cret@pacs/dicom-web",
                          "https://admin:s3cret@pacs/dicom-web?x=1"}) {
    EXPECT_EQ(Why(url).find("s3cret"), std::string::npos) << Why(url);
    EXPECT_NE(Why(url), "") << url;
  }
}

TEST(ValidateBaseUrl, StoresWhatLibcurlUnderstood) {
  EXPECT_EQ(*ValidateBaseUrl("http://pacs:8042", "url"), "http://pacs:8042/");
  EXPECT_NE(Why("http://pacs/dicom-web#").find("has a fragment"), std::string::npos);
}

}  // namespace
}  // namespace pb

namespace pb {
namespace {

TEST(ValidateEndpointUrl, TakesTokenEndpointsWithPathsAndQueries) {
  for (const char* good : {"https://login.example.org/oauth2/token", "http://127.0.0.1:8080/realms/x/token",
                           "https://login.example.org/token?api-version=2"}) {
    auto r = ValidateEndpointUrl(good, "auth.token_url");
    ASSERT_TRUE(r) << good << ": " << r.error().message;
    EXPECT_EQ(*r, good);  // no slash added after a path
  }
  auto bad = ValidateEndpointUrl("https://id:s3cret@login/token", "auth.token_url");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().field, "auth.token_url");
  EXPECT_EQ(bad.error().message.find("s3cret"), std::string::npos);
  EXPECT_NE(bad.error().message.find("auth.client_id"), std::string::npos) << bad.error().message;
  EXPECT_FALSE(ValidateEndpointUrl("login/token", "auth.token_url"));
  EXPECT_FALSE(ValidateEndpointUrl("https://login/token#x", "auth.token_url"));
}

TEST(ValidateProxyUrl, TakesHttpHttpsAndSocks5Only) {
  for (const char* good :
       {"http://proxy:3128", "https://proxy.example.org:443/", "socks5://127.0.0.1:1080", "socks5h://[::1]:1080"}) {
    auto r = ValidateProxyUrl(good, "proxy");
    ASSERT_TRUE(r) << good << ": " << r.error().message;
  }
  EXPECT_EQ(*ValidateProxyUrl("  ", "proxy"), "");
  for (const char* bad : {"proxy:3128", "ftp://proxy", "socks4://proxy:1080", "http://proxy:3128/x",
                          "http://proxy:3128?x=1", "http://u:s3cret@proxy:3128", "http://"}) {
    auto r = ValidateProxyUrl(bad, "proxy");
    ASSERT_FALSE(r) << bad;
    EXPECT_EQ(r.error().field, "proxy");
    EXPECT_EQ(r.error().message.find("s3cret"), std::string::npos);
  }
  EXPECT_NE(ValidateProxyUrl("ftp://proxy", "proxy").error().message.find("socks5h://"), std::string::npos);
}

}  // namespace
}  // namespace pb
