#pragma once
#include <string>

namespace pb {

// Runs the server until SIGTERM or SIGINT; returns the process exit code.
int Serve(const std::string& config_file);

}  // namespace pb
