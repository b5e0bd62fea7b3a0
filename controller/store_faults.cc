#include "controller/store_faults.h"

#include <sqlite3.h>

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <mutex>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace nas::controller {
namespace {

std::atomic<bool> disk_full{false};
sqlite3_vfs* real_vfs = nullptr;
sqlite3_vfs shim_vfs;
sqlite3_io_methods shim_methods;

// A file of the shim: SQLite allocates szOsFile bytes; the real VFS's file
// follows this header.
struct ShimFile {
  sqlite3_file base;
  sqlite3_file* real;
};

sqlite3_file* Real(sqlite3_file* file) { return reinterpret_cast<ShimFile*>(file)->real; }

int Close(sqlite3_file* f) { return Real(f)->pMethods->xClose(Real(f)); }
int Read(sqlite3_file* f, void* out, int n, sqlite3_int64 offset) {
  return Real(f)->pMethods->xRead(Real(f), out, n, offset);
}
int Write(sqlite3_file* f, const void* data, int n, sqlite3_int64 offset) {
  if (disk_full.load()) return SQLITE_FULL;
  return Real(f)->pMethods->xWrite(Real(f), data, n, offset);
}
int Truncate(sqlite3_file* f, sqlite3_int64 size) {
  return Real(f)->pMethods->xTruncate(Real(f), size);
}
int Sync(sqlite3_file* f, int flags) { return Real(f)->pMethods->xSync(Real(f), flags); }
int FileSize(sqlite3_file* f, sqlite3_int64* size) {
  return Real(f)->pMethods->xFileSize(Real(f), size);
}
int Lock(sqlite3_file* f, int level) { return Real(f)->pMethods->xLock(Real(f), level); }
int Unlock(sqlite3_file* f, int level) { return Real(f)->pMethods->xUnlock(Real(f), level); }
int CheckReservedLock(sqlite3_file* f, int* out) {
  return Real(f)->pMethods->xCheckReservedLock(Real(f), out);
}
int FileControl(sqlite3_file* f, int op, void* arg) {
  return Real(f)->pMethods->xFileControl(Real(f), op, arg);
}
int SectorSize(sqlite3_file* f) { return Real(f)->pMethods->xSectorSize(Real(f)); }
int DeviceCharacteristics(sqlite3_file* f) {
  return Real(f)->pMethods->xDeviceCharacteristics(Real(f));
}
int ShmMap(sqlite3_file* f, int region, int size, int extend, void volatile** out) {
  return Real(f)->pMethods->xShmMap(Real(f), region, size, extend, out);
}
int ShmLock(sqlite3_file* f, int offset, int n, int flags) {
  return Real(f)->pMethods->xShmLock(Real(f), offset, n, flags);
}
void ShmBarrier(sqlite3_file* f) { Real(f)->pMethods->xShmBarrier(Real(f)); }
int ShmUnmap(sqlite3_file* f, int remove) { return Real(f)->pMethods->xShmUnmap(Real(f), remove); }

int Open(sqlite3_vfs*, sqlite3_filename name, sqlite3_file* file, int flags, int* out_flags) {
  auto* shim = reinterpret_cast<ShimFile*>(file);
  shim->real = reinterpret_cast<sqlite3_file*>(shim + 1);
  const int rc = real_vfs->xOpen(real_vfs, name, shim->real, flags, out_flags);
  // SQLite calls xClose only when pMethods is set.
  shim->base.pMethods = shim->real->pMethods != nullptr ? &shim_methods : nullptr;
  return rc;
}

}  // namespace

void RegisterFullDiskVfs() {
  static std::once_flag once;
  std::call_once(once, [] {
    real_vfs = sqlite3_vfs_find(nullptr);
    shim_vfs = *real_vfs;  // every other method is the real VFS's
    shim_vfs.zName = kFullDiskVfs;
    shim_vfs.pNext = nullptr;
    shim_vfs.szOsFile = static_cast<int>(sizeof(ShimFile)) + real_vfs->szOsFile;
    shim_vfs.xOpen = Open;
    shim_methods.iVersion = 2;  // with the shared-memory methods WAL needs; no mmap
    shim_methods.xClose = Close;
    shim_methods.xRead = Read;
    shim_methods.xWrite = Write;
    shim_methods.xTruncate = Truncate;
    shim_methods.xSync = Sync;
    shim_methods.xFileSize = FileSize;
    shim_methods.xLock = Lock;
    shim_methods.xUnlock = Unlock;
    shim_methods.xCheckReservedLock = CheckReservedLock;
    shim_methods.xFileControl = FileControl;
    shim_methods.xSectorSize = SectorSize;
    shim_methods.xDeviceCharacteristics = DeviceCharacteristics;
    shim_methods.xShmMap = ShmMap;
    shim_methods.xShmLock = ShmLock;
    shim_methods.xShmBarrier = ShmBarrier;
    shim_methods.xShmUnmap = ShmUnmap;
    sqlite3_vfs_register(&shim_vfs, /*makeDflt=*/0);
  });
}

void SetDiskFull(bool full) { disk_full.store(full); }

absl::StatusOr<int> DamagePages(const std::string& db_path, const std::string& table,
                                const std::string& mark, const std::string& spare,
                                int max_pages) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(db_path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return absl::UnavailableError(absl::StrCat("cannot open ", db_path));
  }
  std::vector<int64_t> pages;
  int64_t page_size = 0;
  auto run = [&](const char* sql, auto&& row) -> bool {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db, sql, -1, &stmt, nullptr) != SQLITE_OK) return false;
    sqlite3_bind_text(stmt, 1, table.c_str(), -1, SQLITE_TRANSIENT);
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) row(stmt);
    sqlite3_finalize(stmt);
    return rc == SQLITE_DONE;
  };
  const bool ok =
      run("PRAGMA wal_checkpoint(TRUNCATE)", [](sqlite3_stmt*) {}) &&
      run("PRAGMA page_size", [&](sqlite3_stmt* s) { page_size = sqlite3_column_int64(s, 0); }) &&
      run("SELECT pageno FROM dbstat WHERE name=?1 AND pagetype='leaf' ORDER BY path",
          [&](sqlite3_stmt* s) { pages.push_back(sqlite3_column_int64(s, 0)); });
  const std::string error = sqlite3_errmsg(db);
  sqlite3_close(db);
  if (!ok || page_size <= 0) {
    return absl::InternalError(absl::StrCat("cannot list the pages of ", table, ": ", error));
  }
  const int fd = ::open(db_path.c_str(), O_RDWR | O_CLOEXEC);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", db_path));
  std::string page(page_size, '\0');
  const std::string garbage(page_size, '\xa5');
  int damaged = 0;
  for (int64_t pageno : pages) {
    if (damaged >= max_pages) break;
    const off_t offset = static_cast<off_t>((pageno - 1) * page_size);
    if (::pread(fd, page.data(), page.size(), offset) != page_size) break;
    if (!absl::StrContains(page, mark) || absl::StrContains(page, spare)) continue;
    if (::pwrite(fd, garbage.data(), garbage.size(), offset) != page_size) break;
    ++damaged;
  }
  ::fsync(fd);
  ::close(fd);
  return damaged;
}

}  // namespace nas::controller
