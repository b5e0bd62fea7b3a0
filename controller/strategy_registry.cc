#include "controller/strategy_registry.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "controller/random_strategy.h"
#include "controller/reinforce_strategy.h"
#include "search_space/search_space.h"

namespace nas::controller {
namespace {

struct Registration {
  const char* name;
  StrategyTraits traits;
  std::unique_ptr<SearchStrategy> (*create)(const v1::JobSpec& spec, int replica_index);
};

// Every strategy the controller can run; one line each.
const std::vector<Registration>& Registry() {
  static const auto* registry = new std::vector<Registration>{
      {"random", {/*needs_parameter_servers=*/false}, &NewRandomStrategy},
      {"reinforce", {/*needs_parameter_servers=*/true}, &NewReinforceStrategy},
  };
  return *registry;
}

absl::StatusOr<const Registration*> Find(const std::string& name) {
  for (const Registration& r : Registry()) {
    if (name == r.name) return &r;
  }
  return absl::InvalidArgumentError(absl::StrCat("strategy.name: unknown strategy '", name,
                                                 "' (known: ", absl::StrJoin(StrategyNames(), ", "),
                                                 ")"));
}

}  // namespace

absl::StatusOr<StrategyTraits> LookupStrategy(const std::string& name) {
  absl::StatusOr<const Registration*> found = Find(name);
  if (!found.ok()) return found.status();
  return (*found)->traits;
}

std::vector<std::string> StrategyNames() {
  std::vector<std::string> names;
  for (const Registration& r : Registry()) names.emplace_back(r.name);
  std::sort(names.begin(), names.end());
  return names;
}

absl::StatusOr<std::unique_ptr<SearchStrategy>> CreateStrategy(const v1::JobSpec& spec,
                                                               int replica_index) {
  if (absl::Status valid = search_space::ValidateSearchSpace(spec.search_space()); !valid.ok()) {
    return valid;
  }
  absl::StatusOr<const Registration*> found = Find(spec.strategy().name());
  if (!found.ok()) return found.status();
  return (*found)->create(spec, replica_index);
}

}  // namespace nas::controller
