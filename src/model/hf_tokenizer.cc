// tokenizer.json BPE model, vocabulary, merges and added tokens (the pipeline around it is
// hf_pipeline.cc).
#include "model/hf_tokenizer.h"

#include <algorithm>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <queue>
#include <sstream>

#include "model/hf_pipeline.h"
#include "util/check.h"

namespace swift {

using nlohmann::json;

struct AddedToken {
  std::string content;
  int32_t id;
  bool special, lstrip, rstrip;
};

struct HfTokenizer::Impl {
  HfPipeline pipe;                // normalizers, pre-tokenizers, decoders
  std::vector<AddedToken> added;  // longest content first
  std::vector<uint8_t> is_added;  // [vocab] 1 for added tokens (decoded verbatim)
  std::string source;
};

HfTokenizer::HfTokenizer(const json& j, const std::string& src) : impl_(std::make_unique<Impl>()) {
  impl_->source = src;
  std::fill(std::begin(byte_ids_), std::end(byte_ids_), -1);
  if (!j.is_object() || !j.contains("model") || !j["model"].is_object()) fail("{}: missing 'model' object", src);
  const json& m = j["model"];
  const std::string type = m.value("type", "BPE");
  if (type != "BPE") fail("{}: tokenizer model '{}' is not supported (only BPE)", src, type);
  for (const char* k : {"continuing_subword_prefix", "end_of_word_suffix"})
    if (m.contains(k) && !m[k].is_null() && m[k] != "") fail("{}: BPE option '{}' is not supported", src, k);
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
    fail("{}: BPE dropout is not supported for inference", src);
  if (!m.contains("vocab") || !m["vocab"].is_object()) fail("{}: model.vocab must be an object", src);
  int64_t max_id = -1;
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    if (!it.value().is_number_integer() || it.value().get<int64_t>() < 0 || it.value().get<int64_t>() >= (1 << 24))
      fail("{}: vocab entry {} has an invalid id {}", src, json(it.key()).dump(), it.value().dump());
    max_id = std::max<int64_t>(max_id, it.value().get<int64_t>());
  }
  if (j.contains("added_tokens") && !j["added_tokens"].is_array()) fail("{}: added_tokens must be an array", src);
  const json& added_json = j.contains("added_tokens") ? j["added_tokens"] : json::array();
  for (const auto& a : added_json)
    if (a.is_object() && a.contains("id") && a["id"].is_number_integer())
      max_id = std::max<int64_t>(max_id, a["id"].get<int64_t>());
  if (max_id >= (1 << 24)) fail("{}: token ids up to {} are too large", src, max_id);
  id_to_token_.resize(max_id + 1);
  std::vector<uint8_t> filled(max_id + 1, 0);
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    const int32_t id = it.value().get<int32_t>();
    if (filled[id]) fail("{}: id {} is used by both {} and {}", src, id, json(id_to_token_[id]).dump(), json(it.key()).dump());
    filled[id] = 1;
    id_to_token_[id] = it.key();
    vocab_[it.key()] = id;
  }
  ignore_merges_ = m.value("ignore_merges", false);
  byte_fallback_ = m.value("byte_fallback", false);
  fuse_unk_ = m.value("fuse_unk", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = vocab_.find(m["unk_token"].get<std::string>());
    if (it == vocab_.end()) fail("{}: unk_token {} is not in the vocabulary", src, m["unk_token"].dump());
    unk_id_ = it->second;
  }
  if (byte_fallback_)
    for (int b = 0; b < 256; ++b) {
      auto it = vocab_.find(fmt::format("<0x{:02X}>", b));
      if (it != vocab_.end()) byte_ids_[b] = it->second;
    }
  if (m.contains("merges") && !m["merges"].is_array()) fail("{}: model.merges must be an array", src);
  const json& merges = m.contains("merges") ? m["merges"] : json::array();
  for (size_t r = 0; r < merges.size(); ++r) {
    std::string a, b;
    const json& e = merges[r];
    if (e.is_string()) {  // older format: "a b"
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ', 1);
      if (sp == std::string::npos) fail("{}: merge {} {} is not two tokens", src, r, e.dump());
      a = s.substr(0, sp), b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>(), b = e[1].get<std::string>();
    } else {
      fail("{}: merge {} {} is not a pair of tokens", src, r, e.dump());
    }
    auto ia = vocab_.find(a), ib = vocab_.find(b), iab = vocab_.find(a + b);
    if (ia == vocab_.end() || ib == vocab_.end() || iab == vocab_.end())
      fail("{}: merge {} ({} + {}) refers to a token that is not in the vocabulary", src, r, json(a).dump(), json(b).dump());
    const uint64_t key = (static_cast<uint64_t>(ia->second) << 32) | static_cast<uint32_t>(ib->second);
    merges_.emplace(key, std::make_pair(static_cast<int32_t>(r), iab->second));
  }
  impl_->is_added.assign(id_to_token_.size(), 0);
  for (const auto& a : added_json) {
    if (!a.is_object() || !a.contains("id") || !a["id"].is_number_integer() || !a.contains("content") || !a["content"].is_string())
      fail("{}: added_tokens entries need an integer 'id' and a string 'content'", src);
    AddedToken t{a["content"].get<std::string>(), a["id"].get<int32_t>(), a.value("special", false),
                 a.value("lstrip", false), a.value("rstrip", false)};
    if (t.id < 0) fail("{}: added token {} has negative id {}", src, json(t.content).dump(), t.id);
    if (t.content.empty()) fail("{}: added token {} has empty content", src, t.id);
    if (a.value("single_word", false)) fail("{}: added token {} uses single_word, which is not supported", src, json(t.content).dump());
    if (!id_to_token_[t.id].empty() && id_to_token_[t.id] != t.content)
      fail("{}: added token {} reuses id {} of {}", src, json(t.content).dump(), t.id, json(id_to_token_[t.id]).dump());
    id_to_token_[t.id] = t.content;
    vocab_[t.content] = t.id;
    impl_->is_added[t.id] = 1;
    impl_->added.push_back(t);
  }
  std::stable_sort(impl_->added.begin(), impl_->added.end(),
                   [](const AddedToken& x, const AddedToken& y) { return x.content.size() > y.content.size(); });
  impl_->pipe.parse(j, src);
  add_bos = add_eos = false;
  const json pp = j.value("post_processor", json());
  if (!pp.is_null()) {
    const std::string pt = pp.value("type", "");
    const json* tp = nullptr;
    if (pt == "TemplateProcessing") tp = &pp;
    else if (pt == "Sequence")
      for (const auto& x : pp.value("processors", json::array()))
        if (x.value("type", "") == "TemplateProcessing") tp = &x;
    if (tp) {
      const json single = tp->value("single", json::array());
      auto special_id = [&](const json& item) -> int32_t {
        const std::string name = item["SpecialToken"].value("id", "");
        auto it = vocab_.find(name);
        if (it == vocab_.end()) fail("{}: post_processor names unknown special token {}", src, json(name).dump());
        return it->second;
      };
      if (!single.empty() && single.front().contains("SpecialToken")) add_bos = true, bos_id = special_id(single.front());
      if (single.size() > 1 && single.back().contains("SpecialToken")) add_eos = true, eos_id = special_id(single.back());
    } else if (pt != "ByteLevel") {
      fail("{}: post_processor type '{}' is not supported (TemplateProcessing, ByteLevel, Sequence)", src, pt);
    }
  }
}

HfTokenizer::~HfTokenizer() = default;

std::string HfTokenizer::piece(int32_t id) const {
  if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary [0, {})", id, vocab_size());
  return id_to_token_[id];
}

int32_t HfTokenizer::token_id(const std::string& s) const {
  auto it = vocab_.find(s);
  return it == vocab_.end() ? -1 : it->second;
}

void HfTokenizer::encode_word(const std::string& word, std::vector<int32_t>& out) const {
  if (ignore_merges_) {
    const int32_t id = token_id(word);
    if (id >= 0) {
      out.push_back(id);
      return;
    }
  }
  struct Sym {
    int32_t id, prev, next;
  };
  std::vector<Sym> syms;
  for (size_t i = 0; i < word.size();) {  // one symbol per character (the text is valid UTF-8)
    const unsigned char lead = word[i];
    const size_t n = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    const std::string ch = word.substr(i, n);
    i += n;
    const int32_t id = token_id(ch);
    auto push = [&](int32_t x) {
      const int32_t i = static_cast<int32_t>(syms.size());
      syms.push_back({x, i - 1, i + 1});
    };
    if (id >= 0) {
      push(id);
    } else if (byte_fallback_ && std::all_of(ch.begin(), ch.end(), [&](char c) { return byte_ids_[static_cast<unsigned char>(c)] >= 0; })) {
      for (unsigned char c : ch) push(byte_ids_[c]);
    } else if (unk_id_ >= 0) {
      if (fuse_unk_ && !syms.empty() && syms.back().id == unk_id_) continue;
      push(unk_id_);
    } else {
      fail("{}: character {} has no token and the tokenizer has no unk_token or byte fallback", impl_->source, json(ch).dump());
    }
  }
  if (syms.empty()) return;
  syms.back().next = -1;
  struct Cand {
    int32_t rank, left, merged, right_id;
  };
  auto worse = [](const Cand& a, const Cand& b) { return a.rank > b.rank || (a.rank == b.rank && a.left > b.left); };
  std::priority_queue<Cand, std::vector<Cand>, decltype(worse)> q(worse);
  auto consider = [&](int32_t l) {
    if (l < 0 || syms[l].next < 0) return;
    const int32_t r = syms[l].next;
    auto it = merges_.find((static_cast<uint64_t>(syms[l].id) << 32) | static_cast<uint32_t>(syms[r].id));
    if (it != merges_.end()) q.push({it->second.first, l, it->second.second, syms[r].id});
  };
  for (int32_t i = 0; i + 1 < static_cast<int32_t>(syms.size()); ++i) consider(i);
  while (!q.empty()) {
    const Cand c = q.top();
    q.pop();
    Sym& l = syms[c.left];
    if (l.id < 0 || l.next < 0 || syms[l.next].id != c.right_id) continue;  // stale
    auto it = merges_.find((static_cast<uint64_t>(l.id) << 32) | static_cast<uint32_t>(c.right_id));
    if (it == merges_.end() || it->second.second != c.merged) continue;
    const int32_t r = l.next;
    l.id = c.merged;
    l.next = syms[r].next;
    if (l.next >= 0) syms[l.next].prev = c.left;
    syms[r].id = -1;
    consider(l.prev);
    consider(c.left);
  }
  for (int32_t i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

std::vector<int32_t> HfTokenizer::encode(std::string_view text) const {
  const int64_t bad = utf8_first_invalid(text);
  if (bad >= 0) fail("input is not valid UTF-8 (byte {} = 0x{:02X})", bad, static_cast<unsigned char>(text[bad]));
  std::vector<int32_t> ids;
  // Added tokens are found first (leftmost, longest), with lstrip/rstrip eating whitespace.
  std::string rest(text);
  bool first = true;
  size_t pos = 0;
  auto encode_segment = [&](const std::string& seg) {
    if (seg.empty()) return;
    const std::string norm = impl_->pipe.normalize(seg);
    for (const auto& w : impl_->pipe.pre_tokenize(norm, first)) encode_word(w, ids);
    first = false;
  };
  std::string pending;
  while (pos < rest.size()) {
    const AddedToken* hit = nullptr;
    for (const auto& a : impl_->added)
      if (rest.compare(pos, a.content.size(), a.content) == 0) {
        hit = &a;
        break;
      }
    if (!hit) {
      pending += rest[pos++];
      continue;
    }
    if (hit->lstrip)
      while (!pending.empty() && std::isspace(static_cast<unsigned char>(pending.back()))) pending.pop_back();
    encode_segment(pending);
    pending.clear();
    ids.push_back(hit->id);
    first = false;
    pos += hit->content.size();
    if (hit->rstrip)
      while (pos < rest.size() && std::isspace(static_cast<unsigned char>(rest[pos]))) ++pos;
  }
  encode_segment(pending);
  return ids;
}

std::string HfTokenizer::decode(const std::vector<int32_t>& ids) const {
  std::string out;
  std::vector<std::string> run;
  bool first = true;
  auto flush = [&] {
    if (run.empty()) return;
    out += impl_->pipe.decode_run(std::move(run), first);
    run.clear();
    first = false;
  };
  for (int32_t id : ids) {
    if (id < 0 || id >= vocab_size()) fail("token id {} is outside the vocabulary [0, {})", id, vocab_size());
    if (impl_->is_added[id]) {  // added tokens are emitted as written, not through the decoder
      flush();
      out += id_to_token_[id];
      first = false;
      continue;
    }
    run.push_back(id_to_token_[id]);
  }
  flush();
  return out;
}

std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot open '{}'", path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded()) fail("{}: not valid JSON", path);
  return std::make_unique<HfTokenizer>(j, path);
}

}  // namespace swift
