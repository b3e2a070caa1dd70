#pragma once
// loco's version; CMake reads these three lines.
#define LOCO_VERSION_MAJOR 0
#define LOCO_VERSION_MINOR 1
#define LOCO_VERSION_PATCH 0

namespace loco {
inline constexpr int version_major = LOCO_VERSION_MAJOR;
inline constexpr int version_minor = LOCO_VERSION_MINOR;
inline constexpr int version_patch = LOCO_VERSION_PATCH;
inline constexpr const char* version_string = "0.1.0";
}  // namespace loco
