#pragma once
// loco's version; CMake reads these three lines.
#define LOCO_VERSION_MAJOR 0
#define LOCO_VERSION_MINOR 1
#define LOCO_VERSION_PATCH 0

#define LOCO_DETAIL_STR2(x) #x
#define LOCO_DETAIL_STR(x) LOCO_DETAIL_STR2(x)
#define LOCO_VERSION_STRING           \
  LOCO_DETAIL_STR(LOCO_VERSION_MAJOR) \
  "." LOCO_DETAIL_STR(LOCO_VERSION_MINOR) "." LOCO_DETAIL_STR(LOCO_VERSION_PATCH)

namespace loco {
inline constexpr int version_major = LOCO_VERSION_MAJOR;
inline constexpr int version_minor = LOCO_VERSION_MINOR;
inline constexpr int version_patch = LOCO_VERSION_PATCH;
inline constexpr const char* version_string = LOCO_VERSION_STRING;
}  // namespace loco
