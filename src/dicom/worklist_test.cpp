#include "dicom/worklist.h"

#include <gtest/gtest.h>

namespace pb::dicom {
namespace {

// A peer nothing listens on: a request refused before connecting never meets it.
WorklistRequest Unreachable() {
  WorklistRequest rq;
  rq.peer.host = "127.0.0.1";
  rq.peer.port = 1;
  rq.peer.called_ae = "RIS";
  rq.peer.calling_ae = "PACSBRIDGE";
  rq.peer.timeout_seconds = 2;
  return rq;
}

TEST(Worklist, ScheduledStepKeysAreTheSequenceItemsAttributes) {
  // PS3.4 K.6.1.2.2: attributes of the Scheduled Procedure Step Sequence's items.
  for (const char* k : {"Modality", "ScheduledStationAETitle", "ScheduledProcedureStepStartDate",
                        "ScheduledPerformingPhysicianName", "ScheduledProcedureStepID", "(0040,0001)"}) {
    EXPECT_TRUE(IsScheduledStepKey(k)) << k;
  }
  for (const char* k :
       {"PatientName", "PatientID", "AccessionNumber", "RequestedProcedureID", "StudyInstanceUID", "NoSuchKeyword"}) {
    EXPECT_FALSE(IsScheduledStepKey(k)) << k;
  }
}

TEST(Worklist, CharacterSetsFollowTheDefinedTerms) {
  // PS3.3 C.12.1.1.2, Tables C.12-2 to C.12-5.
  for (const char* c :
       {"ISO_IR 100", "ISO_IR 192", "ISO_IR 144", "GB18030", "ISO 2022 IR 87", "\\ISO 2022 IR 87",
        "ISO 2022 IR 6\\ISO 2022 IR 87", "ISO 2022 IR 13\\ISO 2022 IR 87", "ISO 2022 IR 6\\ISO 2022 IR 149"}) {
    EXPECT_TRUE(IsKnownCharacterSet(c)) << c;
  }
  for (const char* c : {"", "UTF-8", "ISO_IR 87", "ISO 2022 IR 999", "latin1", "ISO_IR 100\\ISO 2022 IR 87"}) {
    EXPECT_FALSE(IsKnownCharacterSet(c)) << c;
  }
}

TEST(Worklist, RefusesWhatCannotBeAskedBeforeConnecting) {
  auto rq = Unreachable();
  rq.charset = "ISO 2022 IR 87";
  rq.keys = {{"PatientName", "山田*"}};
  auto r = FindWorklist(rq);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().field, "query.PatientName");

  rq = Unreachable();
  rq.keys = {{"ScheduledProcedureStepSequence", ""}};
  r = FindWorklist(rq);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "query.ScheduledProcedureStepSequence");

  rq = Unreachable();
  rq.keys = {{"ScheduledProcedureStepStartDate", "2026-12-03"}};
  r = FindWorklist(rq);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kInvalidArgument);
  EXPECT_EQ(r.error().field, "query.ScheduledProcedureStepStartDate");

  rq = Unreachable();
  rq.charset = "latin1";
  r = FindWorklist(rq);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().field, "mwl_charset");

  // An ASCII value in an ISO 2022 query is asked: the peer is reached (and is not there).
  rq = Unreachable();
  rq.charset = "ISO 2022 IR 87";
  rq.keys = {{"PatientID", "P1"}};
  r = FindWorklist(rq);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.error().code, Code::kUnavailable);
}

}  // namespace
}  // namespace pb::dicom
