// The TOML configuration file.
#include <string_view>

#include "config/settings.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)pb::ParseSettings(std::string_view(reinterpret_cast<const char*>(data), size), "fuzz.toml");
  return 0;
}
