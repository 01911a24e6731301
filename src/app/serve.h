#pragma once
#include <string>

namespace pb {

// Runs the server until SIGTERM or SIGINT; returns the process exit code. `strict`: a receiver
// that cannot listen at start is fatal (as `[server] strict = true`).
int Serve(const std::string& config_file, bool strict = false);

}  // namespace pb
