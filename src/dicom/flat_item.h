#pragma once
// A DICOM data set (or one item of a sequence) as plain text, for the API: keyword → value, and
// sequences as lists of items of the same form. Values are UTF-8; several values are separated
// by "\" as in DICOM; a person name keeps its groups ("Yamada^Tarou=山田^太郎=やまだ^たろう").
#include <map>
#include <string>
#include <vector>

namespace pb::dicom {

struct FlatItem {
  std::map<std::string, std::string> values;               // keyword → value
  std::map<std::string, std::vector<FlatItem>> sequences;  // keyword → items (empty: an empty sequence)
};

}  // namespace pb::dicom
