#include "worker/ptb_dataset.h"

#include <map>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "common/file_util.h"
#include "worker/dataset.h"

namespace nas::worker {
namespace {

// Calls word(w, line) for each word of `text` and "<eos>" at each line's
// end (the empty piece after the final newline is not a line). An error
// names the file and line of a byte that is not printable text.
template <typename Word>
absl::Status ForEachWord(const std::string& text, const std::string& name, Word word) {
  if (text.empty()) return absl::InvalidArgumentError(absl::StrCat(name, ": empty file; expected PTB text"));
  const std::vector<absl::string_view> lines = absl::StrSplit(text, '\n');
  const size_t count = lines.back().empty() ? lines.size() - 1 : lines.size();
  for (size_t i = 0; i < count; ++i) {
    for (char c : lines[i]) {
      if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\r') {
        return absl::InvalidArgumentError(absl::StrCat(name, " line ", i + 1,
                                                       ": a control byte; expected words separated by spaces"));
      }
    }
    for (absl::string_view w : absl::StrSplit(lines[i], absl::ByAnyChar(" \t\r"), absl::SkipEmpty())) {
      if (absl::Status s = word(w, i + 1); !s.ok()) return s;
    }
    if (absl::Status s = word("<eos>", i + 1); !s.ok()) return s;
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<TextCorpus> ParsePtb(const std::string& train, const std::string& valid, const std::string& test,
                                    const std::string& train_name, const std::string& valid_name,
                                    const std::string& test_name) {
  TextCorpus corpus;
  absl::flat_hash_map<std::string, int32_t> ids;
  absl::Status s = ForEachWord(train, train_name, [&](absl::string_view w, size_t line) {
    auto [it, added] = ids.emplace(w, static_cast<int32_t>(ids.size()));
    if (added) {
      if (ids.size() > kPtbVocabulary) {
        return absl::InvalidArgumentError(
            absl::StrCat(train_name, " line ", line, ": more than ", kPtbVocabulary,
                         " distinct words (Mikolov's PTB has 10,000 with <eos>; rarer words are <unk>)"));
      }
      corpus.words.emplace_back(w);
    }
    corpus.train.push_back(it->second);
    return absl::OkStatus();
  });
  if (!s.ok()) return s;
  for (auto [text, name, out] : {std::make_tuple(&valid, &valid_name, &corpus.valid),
                                 std::make_tuple(&test, &test_name, &corpus.test)}) {
    s = ForEachWord(*text, *name, [&, name = name, out = out](absl::string_view w, size_t line) {
      auto it = ids.find(w);
      if (it == ids.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat(*name, " line ", line, ": word '", w.substr(0, 40), "' is not in ", train_name,
                         "'s vocabulary"));
      }
      out->push_back(it->second);
      return absl::OkStatus();
    });
    if (!s.ok()) return s;
  }
  return corpus;
}

absl::StatusOr<std::shared_ptr<const TextCorpus>> LoadPtb(const std::string& dir,
                                                          const std::vector<std::string>& roots) {
  if (dir.empty()) {
    return absl::InvalidArgumentError(
        "evaluator.train.data_dir: must name the directory holding ptb.train.txt, ptb.valid.txt and ptb.test.txt");
  }
  static absl::Mutex mu(absl::kConstInit);
  static auto* cache ABSL_PT_GUARDED_BY(mu) = new std::map<std::string, std::shared_ptr<const TextCorpus>>();
  absl::MutexLock lock(&mu);
  auto it = cache->find(dir);
  if (it != cache->end()) return it->second;
  // Checked before WithGz looks for files, so nothing outside is probed.
  if (absl::Status s = CheckUnderRoots(dir, roots); !s.ok()) return s;
  std::vector<std::string> paths, texts;
  for (const char* part : {"train", "valid", "test"}) {
    paths.push_back(WithGz(absl::StrCat(dir, "/ptb.", part, ".txt")));
    absl::StatusOr<std::string> text = ReadMaybeGzipped(paths.back(), roots);
    if (!text.ok()) return text.status();
    texts.push_back(*std::move(text));
  }
  absl::StatusOr<TextCorpus> corpus = ParsePtb(texts[0], texts[1], texts[2], paths[0], paths[1], paths[2]);
  if (!corpus.ok()) return corpus.status();
  auto shared = std::make_shared<const TextCorpus>(*std::move(corpus));
  (*cache)[dir] = shared;
  return shared;
}

}  // namespace nas::worker
