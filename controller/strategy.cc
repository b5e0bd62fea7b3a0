#include "controller/strategy.h"

#include "absl/strings/str_cat.h"
#include "search_space/search_space.h"
#include "controller/strategies.h"

namespace nas::controller {

absl::StatusOr<std::unique_ptr<SearchStrategy>> CreateStrategy(const v1::JobSpec& spec,
                                                               int replica_index) {
  if (absl::Status valid = search_space::ValidateSearchSpace(spec.search_space()); !valid.ok()) return valid;
  const std::string& name = spec.strategy().name();
  if (name == "reinforce") return NewReinforceStrategy(spec, replica_index);
  if (name == "random") return NewRandomStrategy(spec, replica_index);
  return absl::InvalidArgumentError(
      absl::StrCat("strategy.name: unknown strategy '", name, "' (known: reinforce, random)"));
}

}  // namespace nas::controller
