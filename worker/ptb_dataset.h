// Penn Treebank for the recurrent-cell language model: Mikolov's split
// (ptb.train.txt, ptb.valid.txt, ptb.test.txt; plain or gzipped), one
// sentence per line, words separated by spaces, rare words already "<unk>".
// Each line's words are followed by "<eos>". The vocabulary is the training
// file's words (at most 10,000, Mikolov's 9,999 and "<eos>"), numbered in
// order of first appearance; a word of the validation or test file that is
// not in it makes that file malformed. Parsed without LibTorch.
#ifndef NAS_WORKER_PTB_DATASET_H_
#define NAS_WORKER_PTB_DATASET_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "search_space/child_size.h"

namespace nas::worker {

using search_space::kPtbVocabulary;

struct TextCorpus {
  // Word of each id.
  std::vector<std::string> words;
  // The three files as word ids.
  std::vector<int32_t> train;
  std::vector<int32_t> valid;
  std::vector<int32_t> test;
};

// Parses the three files' text (`*_name` name them in errors: file and line).
absl::StatusOr<TextCorpus> ParsePtb(const std::string& train, const std::string& valid, const std::string& test,
                                    const std::string& train_name, const std::string& valid_name,
                                    const std::string& test_name);

// Reads DIR/ptb.{train,valid,test}.txt (or .txt.gz where only that exists)
// under `roots` (the worker's --data_roots); an empty dir is an error.
// Loaded once per process per directory and cached.
absl::StatusOr<std::shared_ptr<const TextCorpus>> LoadPtb(const std::string& dir,
                                                          const std::vector<std::string>& roots);

}  // namespace nas::worker

#endif  // NAS_WORKER_PTB_DATASET_H_
