// Read-only memory map of a whole file. Weights are used in place from the map, so loading a
// model costs page faults, not a copy (issue 2: "memory-mapped, no copy of the whole file").
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

namespace swift {

class MappedFile {
 public:
  // Throws swift::Error naming the path when it cannot be opened or mapped.
  explicit MappedFile(const std::string& path);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  // Drops this process's mapping of the whole pages inside [p, p + n) when that range lies in
  // this map (no-op otherwise): after weights were repacked into a copy (ops/panel.h) their
  // file pages no longer count as resident memory. The map stays valid; a later read faults
  // the page in again from the file.
  void release(const void* p, size_t n) const;
  size_t size() const { return size_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
};

}  // namespace swift
