#pragma once
#include <loco/error.hpp>
#include <loco/merge/inputs.hpp>
#include <string>

namespace loco::merge::detail {

template <class T>
void check_shapes(const char* rule, const inputs<T>& in, std::size_t d) {
  const std::size_t k = in.dense() ? d : in.support.size();
  if (in.average.size() != k || in.y.size() != d) {
    throw config_error(std::string(rule) + ": sizes do not match: x " + std::to_string(d) + ", y " +
                       std::to_string(in.y.size()) + ", average " +
                       std::to_string(in.average.size()) + ", support " +
                       std::to_string(in.support.size()));
  }
}

}  // namespace loco::merge::detail
