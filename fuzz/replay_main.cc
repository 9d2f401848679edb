// Copyright (c) glint authors.
//
// Runs a libFuzzer target's entry point over files (or directories of files)
// without libFuzzer, so that the seed corpus and every saved reproducer run
// in the ordinary test build with any compiler.

#include <dirent.h>
#include <sys/stat.h>

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size);

namespace {

int RunFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    fprintf(stderr, "replay: cannot read %s\n", path.c_str());
    return 1;
  }
  std::vector<uint8_t> bytes((std::istreambuf_iterator<char>(in)),
                             std::istreambuf_iterator<char>());
  LLVMFuzzerTestOneInput(bytes.data(), bytes.size());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  int files = 0;
  for (int i = 1; i < argc; ++i) {
    struct stat st;
    if (stat(argv[i], &st) != 0) {
      fprintf(stderr, "replay: %s does not exist\n", argv[i]);
      return 1;
    }
    if (S_ISDIR(st.st_mode)) {
      DIR* d = opendir(argv[i]);
      while (dirent* e = readdir(d)) {
        if (e->d_name[0] == '.') continue;
        if (RunFile(std::string(argv[i]) + "/" + e->d_name) != 0) return 1;
        ++files;
      }
      closedir(d);
    } else {
      if (RunFile(argv[i]) != 0) return 1;
      ++files;
    }
  }
  printf("replay: %d inputs ran clean\n", files);
  return files > 0 ? 0 : 1;
}
