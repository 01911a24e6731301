#include "auth/accounts.h"
#include "archive/testing.h"

#include <gtest/gtest.h>
#include <sys/stat.h>

#include <fstream>

#include "auth/crypto.h"

namespace pb::auth {
namespace {

using namespace std::chrono_literals;

// Cheap hashes: the cost is a parameter, the algorithm is the same.
AccountSettings Cheap(std::filesystem::path initial_file = {}) {
  AccountSettings s;
  s.cost.memory_kib = 64;
  s.cost.passes = 1;
  s.initial_password_file = std::move(initial_file);
  return s;
}

class AccountsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           ("pb-auth-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    auto db = OpenTestDatabase(dir_);
    ASSERT_TRUE(db) << db.error().message;
    db_ = std::move(*db);
    Reopen();
  }
  void TearDown() override {
    accounts_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  // A new service over the same index, as after a restart.
  void Reopen() {
    accounts_ = std::make_unique<Accounts>(*db_, clock_, Cheap(dir_ / "initial-admin-password"));
    auto loaded = accounts_->Load();
    ASSERT_TRUE(loaded) << loaded.error().message;
  }
  Principal Admin() { return {"admin", Role::kAdmin, "basic", "", "", "", {}}; }

  std::filesystem::path dir_;
  std::unique_ptr<Database> db_;
  ManualClock clock_{TimePoint{} + 1'800'000'000s};
  std::unique_ptr<Accounts> accounts_;
};

TEST(PasswordTest, Argon2idHashesVerifyAndCarryTheirParameters) {
  auto h = HashPassword("correct horse", {64, 1});
  ASSERT_TRUE(h) << h.error().message;
  EXPECT_EQ(h->rfind("$argon2id$v=19$m=64,t=1,p=1$", 0), 0u) << *h;
  EXPECT_TRUE(VerifyPassword("correct horse", *h));
  EXPECT_FALSE(VerifyPassword("correct horse ", *h));
  EXPECT_FALSE(VerifyPassword("correct horse", "$2y$10$notargon"));
  // A random salt: the same password hashes differently.
  EXPECT_NE(*h, *HashPassword("correct horse", {64, 1}));
}

TEST(PasswordTest, KnownAnswerOfTheReferenceImplementation) {
  // RFC 9106's test vectors need secret and associated data; this one is the reference
  // command line's own: echo -n password | argon2 somesalt -id -t 2 -k 65536 -p 1 -l 32.
  EXPECT_TRUE(VerifyPassword("password",
                             "$argon2id$v=19$m=65536,t=2,p=1$c29tZXNhbHQ$CTFhFdXPJO1aFaMaO6Mm5c8y7cJHAph8ArZWb2GRPPc"));
}

TEST(PasswordTest, Rules) {
  EXPECT_NE(PasswordProblem("short", "bob"), "");
  EXPECT_EQ(PasswordProblem("longenough", "bob"), "");
  EXPECT_NE(PasswordProblem("alice-1234", "alice-1234"), "");
  EXPECT_EQ(PasswordProblem("ééééééé\xc3\xa9", "bob"), "");  // 8 characters, 16 bytes
  EXPECT_NE(PasswordProblem(std::string(1025, 'x'), "bob"), "");
}

TEST(CryptoTest, Base64DecodeFollowsRfc4648) {
  // RFC 4648 section 10.
  EXPECT_EQ(Base64Decode(""), "");
  EXPECT_EQ(Base64Decode("Zg=="), "f");
  EXPECT_EQ(Base64Decode("Zm8="), "fo");
  EXPECT_EQ(Base64Decode("Zm9v"), "foo");
  EXPECT_EQ(Base64Decode("Zm9vYmE="), "fooba");
  EXPECT_EQ(Base64Decode("Zm9vYmFy"), "foobar");
  EXPECT_EQ(Base64Decode("Zm9vYmF"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zm9v YmFy"), std::nullopt);
  EXPECT_EQ(Base64Decode("Zg=a"), std::nullopt);
  EXPECT_EQ(Base64Decode("Z==="), std::nullopt);
}

TEST(CryptoTest, Sha256AndRandomSecrets) {
  // FIPS 180-2 example "abc".
  EXPECT_EQ(Sha256Hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  const std::string a = RandomToken(32), b = RandomToken(32);
  EXPECT_EQ(a.size(), 43u);
  EXPECT_NE(a, b);
  EXPECT_EQ(a.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"), std::string::npos);
  const std::string p = RandomPassword(20);
  EXPECT_EQ(p.size(), 20u);
  EXPECT_EQ(p.find_first_not_of("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"), std::string::npos);
}

TEST(ThrottleTest, FreeThenDoublingUpToFiveMinutes) {
  EXPECT_EQ(ThrottleDelaySeconds(4), 0);
  EXPECT_EQ(ThrottleDelaySeconds(5), 2);
  EXPECT_EQ(ThrottleDelaySeconds(6), 4);
  EXPECT_EQ(ThrottleDelaySeconds(9), 32);
  EXPECT_EQ(ThrottleDelaySeconds(13), 300);
  EXPECT_EQ(ThrottleDelaySeconds(1000), 300);
}

TEST_F(AccountsTest, FirstStartMakesARandomAdminPasswordKeptInAPrivateFile) {
  auto made = accounts_->Bootstrap(std::nullopt);
  ASSERT_TRUE(made) << made.error().message;
  ASSERT_TRUE(made->has_value());
  const std::string pw = **made;
  EXPECT_EQ(pw.size(), 20u);
  struct stat st {};
  ASSERT_EQ(::stat((dir_ / "initial-admin-password").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::ifstream f(dir_ / "initial-admin-password");
  std::string line;
  std::getline(f, line);
  EXPECT_EQ(line, pw);
  auto p = accounts_->Basic("admin", pw, {"127.0.0.1", "r1"});
  ASSERT_TRUE(p) << p.error().message;
  EXPECT_EQ(p->role, Role::kAdmin);

  // Restarted: nothing new is made, and the file goes when the password is changed.
  Reopen();
  bool opens = true;
  auto again = accounts_->Bootstrap(std::string("something-else"), &opens);
  ASSERT_TRUE(again);
  EXPECT_FALSE(again->has_value());
  EXPECT_FALSE(opens);
  ASSERT_TRUE(accounts_->UpdateUser("admin", std::nullopt, std::string("a-new-passw0rd")));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "initial-admin-password"));
  EXPECT_FALSE(accounts_->Basic("admin", pw, {"127.0.0.1", "r1"}));
  EXPECT_TRUE(accounts_->Basic("admin", "a-new-passw0rd", {"127.0.0.1", "r1"}));
}

TEST_F(AccountsTest, ConfiguredInitialPasswordIsUsedOnce) {
  auto made = accounts_->Bootstrap(std::string("from-the-config"));
  ASSERT_TRUE(made);
  EXPECT_FALSE(made->has_value());
  EXPECT_FALSE(std::filesystem::exists(dir_ / "initial-admin-password"));
  EXPECT_TRUE(accounts_->Basic("admin", "from-the-config", {}));
  Reopen();
  bool opens = false;
  ASSERT_TRUE(accounts_->Bootstrap(std::string("from-the-config"), &opens));
  EXPECT_TRUE(opens);
  EXPECT_EQ(accounts_->Users().size(), 1u);
  EXPECT_EQ(accounts_->Users()[0].password_hash, "");  // views carry no hash
}

TEST_F(AccountsTest, FailedLogInsSlowTheAccountDownAndASuccessResets) {
  ASSERT_TRUE(accounts_->Bootstrap(std::string("right-password")));
  for (int i = 0; i < kFreeFailures; ++i) {
    auto r = accounts_->Basic("admin", "wrong", {"10.0.0.1", "r1"});
    ASSERT_FALSE(r);
    EXPECT_EQ(r.error().why, Refusal::Why::kCredentials) << i;
  }
  // Now even the right password waits 2 s, unchecked.
  auto r = accounts_->Basic("admin", "right-password", {"10.0.0.1", "r1"});
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().why, Refusal::Why::kThrottled);
  EXPECT_EQ(r.error().retry_after_s, 2);
  clock_.Advance(2s);
  EXPECT_FALSE(accounts_->Basic("admin", "wrong", {"10.0.0.1", "r1"}));  // the 6th failure: 4 s
  clock_.Advance(3s);
  auto login = accounts_->Login("admin", "right-password", {"10.0.0.1", "r1"});
  ASSERT_FALSE(login);
  EXPECT_EQ(login.error().retry_after_s, 1);
  clock_.Advance(1s);
  EXPECT_TRUE(accounts_->Basic("admin", "right-password", {"10.0.0.1", "r1"}));
  EXPECT_FALSE(accounts_->Basic("admin", "wrong", {"10.0.0.1", "r1"}));  // counting starts again
  EXPECT_TRUE(accounts_->Basic("admin", "right-password", {"10.0.0.1", "r1"}));
  // Unknown names are throttled alike (whether a name exists is not told).
  for (int i = 0; i < kFreeFailures; ++i)
    EXPECT_EQ(accounts_->Basic("nobody", "x", {}).error().message, "wrong user name or password");
  EXPECT_EQ(accounts_->Basic("nobody", "x", {}).error().why, Refusal::Why::kThrottled);
  // Failures were audited, with the client.
  AuditFilter f;
  f.action = "auth.login_failed";
  auto log = accounts_->AuditLog(f);
  ASSERT_TRUE(log);
  ASSERT_GE(log->size(), 7u);
  EXPECT_EQ(log->back().client, "10.0.0.1");
  EXPECT_EQ(log->back().actor, "admin");
}

TEST_F(AccountsTest, AnAttackersFailuresDoNotLockOutWhoKnowsThePassword) {
  ASSERT_TRUE(accounts_->Bootstrap(std::string("right-password")));
  ASSERT_TRUE(accounts_->Basic("admin", "right-password", {"10.0.0.2", "r0"}));  // a script, verified
  for (int i = 0; i < kFreeFailures + 2; ++i) (void)accounts_->Basic("admin", "guess", {"10.6.6.6", "r1"});
  EXPECT_EQ(accounts_->Basic("admin", "guess", {"10.6.6.6", "r2"}).error().why, Refusal::Why::kThrottled);
  EXPECT_EQ(accounts_->Basic("Admin", "guess", {"10.6.6.6", "r3"}).error().why, Refusal::Why::kThrottled);  // any case
  // The script's remembered password still opens, with no wait and no hash.
  EXPECT_TRUE(accounts_->Basic("admin", "right-password", {"10.0.0.2", "r4"}));
  // A new log-in (not remembered) waits like everyone else.
  EXPECT_EQ(accounts_->Login("admin", "other-password", {"10.0.0.3", "r5"}).error().why, Refusal::Why::kThrottled);
  // Log-ins are audited with their request ids.
  AuditFilter f;
  f.action = "auth.login";
  auto log = accounts_->AuditLog(f);
  ASSERT_TRUE(log);
  ASSERT_EQ(log->size(), 1u);  // the verified one; the remembered one is not
  EXPECT_EQ(log->front().request_id, "r0");
  EXPECT_EQ(log->front().via, "basic");
  f.action = "auth.login_failed";
  log = accounts_->AuditLog(f);
  ASSERT_TRUE(log);
  EXPECT_EQ(log->size(), static_cast<size_t>(kFreeFailures));  // throttled attempts are not checked
  EXPECT_EQ(log->front().request_id, "r1");
}

TEST_F(AccountsTest, SessionsEndWhenIdleAtTheirEndAndAtLogOut) {
  ASSERT_TRUE(accounts_->Bootstrap(std::string("right-password")));
  auto s = accounts_->Login("ADMIN", "right-password", {"127.0.0.1", "r1"});  // names ignore case
  ASSERT_TRUE(s) << s.error().message;
  EXPECT_EQ(s->principal.username, "admin");
  EXPECT_EQ(s->principal.csrf_token.size(), 43u);
  auto p = accounts_->Session(s->cookie);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->via, "session");
  EXPECT_EQ(p->csrf_token, s->principal.csrf_token);
  EXPECT_FALSE(accounts_->Session(s->cookie + "x"));
  // Survives a restart (kept in the index).
  Reopen();
  EXPECT_TRUE(accounts_->Session(s->cookie));
  // Idle for longer than 8 h: ended.
  clock_.Advance(8h + 1s);
  EXPECT_FALSE(accounts_->Session(s->cookie));
  // In use every 7 h: ends at 7 days all the same.
  auto s2 = accounts_->Login("admin", "right-password", {});
  ASSERT_TRUE(s2);
  for (int i = 0; i < 23; ++i) {
    clock_.Advance(7h);
    ASSERT_TRUE(accounts_->Session(s2->cookie)) << i;
  }
  clock_.Advance(7h);
  EXPECT_FALSE(accounts_->Session(s2->cookie));
  auto s3 = accounts_->Login("admin", "right-password", {});
  ASSERT_TRUE(s3);
  accounts_->Logout(*accounts_->Session(s3->cookie));
  EXPECT_FALSE(accounts_->Session(s3->cookie));
  Reopen();
  EXPECT_FALSE(accounts_->Session(s3->cookie));
}

TEST_F(AccountsTest, UsersRolesAndTheLastAdmin) {
  ASSERT_TRUE(accounts_->Bootstrap(std::string("right-password")));
  EXPECT_EQ(accounts_->CreateUser("bob smith", "user", "password-1").error().field, "username");
  EXPECT_EQ(accounts_->CreateUser("bob", "boss", "password-1").error().field, "role");
  EXPECT_EQ(accounts_->CreateUser("bob", "user", "short").error().field, "password");
  ASSERT_TRUE(accounts_->CreateUser("bob", "user", "password-1"));
  EXPECT_EQ(accounts_->CreateUser("BOB", "user", "password-1").error().code, Code::kAlreadyExists);
  EXPECT_EQ(accounts_->UpdateUser("admin", std::string("user"), std::nullopt).error().code, Code::kConflict);
  EXPECT_EQ(accounts_->DeleteUser("admin").error().code, Code::kConflict);
  ASSERT_TRUE(accounts_->UpdateUser("bob", std::string("admin"), std::nullopt));
  EXPECT_TRUE(accounts_->DeleteUser("admin"));  // bob is an admin now
  EXPECT_EQ(accounts_->Basic("bob", "password-1", {})->role, Role::kAdmin);
  // A new password ends the user's sessions but the one kept.
  auto s1 = accounts_->Login("bob", "password-1", {});
  auto s2 = accounts_->Login("bob", "password-1", {});
  ASSERT_TRUE(s1 && s2);
  ASSERT_TRUE(accounts_->UpdateUser("bob", std::nullopt, std::string("password-2"), s2->principal.session_hash));
  EXPECT_FALSE(accounts_->Session(s1->cookie));
  EXPECT_TRUE(accounts_->Session(s2->cookie));
  // The remembered old password no longer opens anything.
  EXPECT_FALSE(accounts_->Basic("bob", "password-1", {}));
  Reopen();
  EXPECT_FALSE(accounts_->Session(s1->cookie));
  EXPECT_TRUE(accounts_->Basic("bob", "password-2", {}));
  EXPECT_FALSE(accounts_->User("admin"));
}

TEST_F(AccountsTest, AnAccountsProjectsReachEveryWayItAuthenticatesAndSurviveARestart) {
  ASSERT_TRUE(accounts_->Bootstrap(std::string("right-password")));
  ASSERT_TRUE(accounts_->CreateUser("lab", "read-only", "password-1", {"LAB-A", "LAB-B"}));
  const std::vector<std::string> both{"LAB-A", "LAB-B"};
  EXPECT_EQ(accounts_->Basic("lab", "password-1", {})->projects, both);
  auto session = accounts_->Login("lab", "password-1", {});
  ASSERT_TRUE(session);
  EXPECT_EQ(accounts_->Session(session->cookie)->projects, both);
  auto token = accounts_->CreateToken(*accounts_->Basic("lab", "password-1", {}), "t", std::nullopt, std::nullopt);
  ASSERT_TRUE(token);
  EXPECT_EQ(accounts_->Token(token->secret)->projects, both);
  // A change reaches the session, the token and the remembered password at once.
  ASSERT_TRUE(accounts_->UpdateUser("lab", std::nullopt, std::nullopt, {}, std::vector<std::string>{"LAB-B"}));
  const std::vector<std::string> b{"LAB-B"};
  EXPECT_EQ(accounts_->Session(session->cookie)->projects, b);
  EXPECT_EQ(accounts_->Token(token->secret)->projects, b);
  EXPECT_EQ(accounts_->Basic("lab", "password-1", {})->projects, b);
  Reopen();
  EXPECT_EQ(accounts_->User("lab")->projects, b);
  EXPECT_EQ(accounts_->Basic("lab", "password-1", {})->projects, b);
  EXPECT_TRUE(accounts_->Basic("admin", "right-password", {})->projects.empty());
}

TEST_F(AccountsTest, TokensHaveAtMostTheirOwnersRoleAndCanBeRevoked) {
  ASSERT_TRUE(accounts_->Bootstrap(std::string("right-password")));
  ASSERT_TRUE(accounts_->CreateUser("carol", "user", "password-1"));
  const Principal carol{"carol", Role::kUser, "basic", "", "", "", {}};
  EXPECT_EQ(accounts_->CreateToken(carol, "ci", std::string("admin"), std::nullopt).error().field, "role");
  EXPECT_EQ(accounts_->CreateToken(carol, " ", std::nullopt, std::nullopt).error().field, "name");
  EXPECT_EQ(accounts_->CreateToken(carol, "ci", std::nullopt, 0).error().field, "expires_days");
  auto t = accounts_->CreateToken(carol, "ci", std::nullopt, 30);
  ASSERT_TRUE(t) << t.error().message;
  EXPECT_EQ(t->secret.rfind("pbt_", 0), 0u);
  EXPECT_EQ(t->record.token_hash, Sha256Hex(t->secret));
  auto p = accounts_->Token(t->secret);
  ASSERT_TRUE(p);
  EXPECT_EQ(p->role, Role::kUser);
  EXPECT_EQ(p->via, "token");
  // A token never has more than its owner has now.
  ASSERT_TRUE(accounts_->UpdateUser("carol", std::string("read-only"), std::nullopt));
  EXPECT_EQ(accounts_->Token(t->secret)->role, Role::kReadOnly);
  // Others cannot see or revoke it; an admin can.
  ASSERT_TRUE(accounts_->CreateUser("dave", "user", "password-1"));
  const Principal dave{"dave", Role::kUser, "basic", "", "", "", {}};
  EXPECT_TRUE(accounts_->Tokens(dave, true).empty());
  EXPECT_EQ(accounts_->RevokeToken(dave, t->record.id).error().code, Code::kNotFound);
  EXPECT_EQ(accounts_->Tokens(Admin(), true).size(), 1u);
  EXPECT_TRUE(accounts_->Tokens(Admin(), false).empty());
  Reopen();
  EXPECT_TRUE(accounts_->Token(t->secret));
  ASSERT_TRUE(accounts_->RevokeToken(Admin(), t->record.id));
  EXPECT_FALSE(accounts_->Token(t->secret));
  // Expiry.
  auto t2 = accounts_->CreateToken(carol, "short", std::nullopt, 1);
  ASSERT_TRUE(t2);
  clock_.Advance(24h - 1s);
  EXPECT_TRUE(accounts_->Token(t2->secret));
  clock_.Advance(1s);
  EXPECT_FALSE(accounts_->Token(t2->secret));
  // Deleting the owner deletes its tokens.
  auto t3 = accounts_->CreateToken(carol, "third", std::nullopt, std::nullopt);
  ASSERT_TRUE(t3);
  ASSERT_TRUE(accounts_->DeleteUser("carol"));
  EXPECT_FALSE(accounts_->Token(t3->secret));
  Reopen();
  EXPECT_FALSE(accounts_->Token(t3->secret));
}

}  // namespace
}  // namespace pb::auth
