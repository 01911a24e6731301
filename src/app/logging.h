#pragma once
#include <memory>
#include <string>

#include <spdlog/formatter.h>

namespace pb {

// Sets up the process's two loggers on stderr: "pacsbridge" (the default logger) and "dcmtk"
// (DCMTK's own messages, forwarded by dicom::InitializeDicomNetwork), at `level` and in `format`:
// "text" (one line per event) or "json" (JsonLogFormatter).
// `instance`: [server] instance_id when set: each line names it ("instance" in JSON, after
// the logger; "[pacsbridge] [gateway-2]" in text).
void ConfigureLogging(const std::string& level, const std::string& format, const std::string& instance = {});

// True once ConfigureLogging chose "json": a fatal start error then goes through the logger too.
bool JsonLogging();

// One JSON object per line, for log shippers:
//   {"time":"2026-12-05T01:02:03.456789Z","level":"info","logger":"pacsbridge","thread":4242,
//    "message":"..."}
// time is UTC with microseconds; level is spdlog's name (trace, debug, info, warning, error,
// critical); bytes of the message that are not UTF-8 are written as U+FFFD, so every line parses.
std::unique_ptr<spdlog::formatter> JsonLogFormatter(const std::string& instance = {});

}  // namespace pb
