#include "dicom/network.h"

#include <gtest/gtest.h>

#include <memory>
#include <sstream>

#include <dcmtk/config/osconfig.h>
#include <dcmtk/oflog/oflog.h>
#include <spdlog/sinks/ostream_sink.h>
#include <spdlog/spdlog.h>

namespace pb::dicom {
namespace {

TEST(DicomNetwork, DcmtkMessagesGoToTheDcmtkLogger) {
  std::ostringstream out;
  auto sink = std::make_shared<spdlog::sinks::ostream_sink_mt>(out);
  sink->set_pattern("%n|%l|%v");
  auto logger = std::make_shared<spdlog::logger>("dcmtk", sink);
  logger->set_level(spdlog::level::info);
  spdlog::drop("dcmtk");
  spdlog::register_logger(logger);
  InitializeDicomNetwork("info");

  OFLogger dcmdata = OFLog::getLogger("dcmtk.dcmdata");
  OFLogger dcmnet = OFLog::getLogger("dcmtk.dcmnet");
  OFLOG_ERROR(dcmdata, "cannot convert this character set");
  OFLOG_FATAL(dcmnet, "association fell apart");
  OFLOG_INFO(dcmnet, "below our level");  // DCMTK's info is our debug
  logger->flush();
  EXPECT_EQ(out.str(),
            "dcmtk|warning|cannot convert this character set\n"
            "dcmtk|error|association fell apart\n");
  spdlog::drop("dcmtk");
}

}  // namespace
}  // namespace pb::dicom
