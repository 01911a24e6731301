// The spreadsheet (CSV) of a bulk import, as uploaded.
#include <string_view>

#include "jobs/import_sheet.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)pb::ParseImportSheet(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
