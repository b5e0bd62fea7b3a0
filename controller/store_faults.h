// Faults of the trial store's file for tests.
//
// A full disk: an SQLite VFS over the default one whose writes fail with
// SQLITE_FULL while the "disk" is full, as ENOSPC does on a real full disk
// (SQLite's own error paths run; reads go on). A trial store opened with
// TrialStoreOptions::vfs = kFullDiskVfs uses it.
#ifndef NAS_CONTROLLER_STORE_FAULTS_H_
#define NAS_CONTROLLER_STORE_FAULTS_H_

#include <string>

#include "absl/status/statusor.h"

namespace nas::controller {

inline constexpr char kFullDiskVfs[] = "nas_full_disk";

// Registers the VFS (once; not the default). Thread-safe.
void RegisterFullDiskVfs();
// Every write through the VFS fails from now on (true) or goes through again
// (false). Thread-safe.
void SetDiskFull(bool full);

// Damage: overwrites with garbage up to `max_pages` leaf pages of `table` in
// the SQLite database `db_path` (no process may have it open) that hold
// `mark` and not `spare` (e.g. one job's id and another's), the first ones
// in the b-tree's order (SQLite's dbstat table says which pages are whose;
// the WAL is checkpointed into the file first). Returns the pages overwritten.
absl::StatusOr<int> DamagePages(const std::string& db_path, const std::string& table,
                                const std::string& mark, const std::string& spare, int max_pages);

}  // namespace nas::controller

#endif  // NAS_CONTROLLER_STORE_FAULTS_H_
