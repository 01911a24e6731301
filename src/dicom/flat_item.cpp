#include "dicom/flat_item_impl.h"

#include <sstream>

#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcjson.h>
#include <dcmtk/dcmdata/dcsequen.h>
#include <fmt/format.h>

#include "core/validate.h"
#include "dicom/find_impl.h"

namespace pb::dicom {

FlatItem Flatten(DcmItem& item) {
  FlatItem out;
  for (unsigned long i = 0; i < item.card(); ++i) {
    DcmElement* el = item.getElement(i);
    const DcmTagKey key = el->getTag().getXTag();
    if (key == DCM_SpecificCharacterSet) continue;
    if (el->ident() == EVR_SQ) {
      auto* sq = static_cast<DcmSequenceOfItems*>(el);
      std::vector<FlatItem> items;
      for (unsigned long k = 0; k < sq->card(); ++k) items.push_back(Flatten(*sq->getItem(k)));
      out.sequences[KeywordOf(key)] = std::move(items);
      continue;
    }
    OFString value;
    el->getOFStringArray(value);
    out.values[KeywordOf(key)] = value.c_str();
  }
  return out;
}

[[nodiscard]] Result<void> Unflatten(const FlatItem& flat, DcmItem& item, const std::string& field_prefix) {
  for (const auto& [name, value] : flat.values) {
    DcmTagKey key;
    if (!ParseKeyword(name, key)) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is not a DICOM keyword or (gggg,eeee) tag", name),
                  field_prefix + name);
    }
    if (DcmTag(key).getEVR() == EVR_SQ) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is a sequence: give it as a list of items", name),
                  field_prefix + name);
    }
    if (item.putAndInsertString(key, value.c_str()).bad()) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' cannot take the value '{}'", name, value),
                  field_prefix + name);
    }
  }
  for (const auto& [name, items] : flat.sequences) {
    DcmTagKey key;
    if (!ParseKeyword(name, key) || DcmTag(key).getEVR() != EVR_SQ) {
      return Fail(Code::kInvalidArgument, fmt::format("'{}' is not a DICOM sequence", name), field_prefix + name);
    }
    item.findAndDeleteElement(key);
    auto* sq = new DcmSequenceOfItems(key);
    item.insert(sq, true);
    for (size_t i = 0; i < items.size(); ++i) {
      auto* child = new DcmItem();
      sq->append(child);
      if (auto r = Unflatten(items[i], *child, fmt::format("{}{}[{}].", field_prefix, name, i)); !r) return r;
    }
  }
  return {};
}

std::string DicomJson(DcmItem& item) {
  std::ostringstream json;
  DcmJsonFormatCompact format(OFFalse);
  if (item.writeJson(json, format).bad()) return {};
  // DCMTK 3.6.7 writes an item's members only; the object's braces are ours then.
  // Values no character set decoded keep their bytes: those that are not UTF-8 are replaced, so
  // the JSON stays well-formed.
  std::string text = ToValidUtf8(json.str());
  const size_t first = text.find_first_not_of(" \r\n\t");
  return first != std::string::npos && text[first] == '{' ? text : "{" + text + "}";
}

}  // namespace pb::dicom
