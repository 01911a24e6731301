#pragma once
// What the archive does with an instance whose SOP Instance UID it holds already ([server]
// duplicates): keep the stored one, or replace it.

namespace pb {

enum class DuplicatePolicy { kKeep, kOverwrite };

}  // namespace pb
