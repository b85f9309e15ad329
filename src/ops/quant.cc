#include "ops/quant.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "util/check.h"
#include "util/half.h"

namespace swift {

namespace {

float half_at(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return f16_to_f32(h);
}

void put_half(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

int nearest_int(float v) { return static_cast<int>(std::lrintf(v)); }

}  // namespace

void dequantize_row(DType t, const uint8_t* row, int64_t n, float* out) {
  SWIFT_CHECK(n % dtype_block(t) == 0);
  const int64_t nb = n / dtype_block(t), bb = dtype_block_bytes(t);
  for (int64_t b = 0; b < nb; ++b) {
    const uint8_t* x = row + b * bb;
    float* y = out + b * dtype_block(t);
    switch (t) {
      case DType::kF32: std::memcpy(y, x, 4); break;
      case DType::kF16: y[0] = half_at(x); break;
      case DType::kBF16: {
        uint16_t h;
        std::memcpy(&h, x, 2);
        y[0] = bf16_to_f32(h);
        break;
      }
      case DType::kQ8_0: {
        const float d = half_at(x);
        for (int j = 0; j < 32; ++j) y[j] = static_cast<float>(static_cast<int8_t>(x[2 + j])) * d;
        break;
      }
      case DType::kQ4_0: {
        const float d = half_at(x);
        for (int j = 0; j < 16; ++j) {
          y[j] = static_cast<float>((x[2 + j] & 0x0F) - 8) * d;
          y[j + 16] = static_cast<float>((x[2 + j] >> 4) - 8) * d;
        }
        break;
      }
      case DType::kQ4_K:
      case DType::kQ5_K: {
        const bool five = t == DType::kQ5_K;
        const float d = half_at(x), dmin = half_at(x + 2);
        const uint8_t* scales = x + 4;
        const uint8_t* qh = x + 16;
        const uint8_t* q = x + (five ? 48 : 16);
        int is = 0;
        uint8_t u1 = 1, u2 = 2;
        for (int j = 0; j < 256; j += 64) {
          uint8_t sc, m;
          q4k_scale_min(is + 0, scales, &sc, &m);
          const float d1 = d * sc, m1 = dmin * m;
          q4k_scale_min(is + 1, scales, &sc, &m);
          const float d2 = d * sc, m2 = dmin * m;
          for (int l = 0; l < 32; ++l)
            *y++ = d1 * static_cast<float>((q[l] & 0xF) + (five && (qh[l] & u1) ? 16 : 0)) - m1;
          for (int l = 0; l < 32; ++l)
            *y++ = d2 * static_cast<float>((q[l] >> 4) + (five && (qh[l] & u2) ? 16 : 0)) - m2;
          q += 32;
          is += 2;
          u1 = static_cast<uint8_t>(u1 << 2);
          u2 = static_cast<uint8_t>(u2 << 2);
        }
        break;
      }
      case DType::kQ6_K: {
        const uint8_t* ql = x;
        const uint8_t* qh = x + 128;
        const int8_t* sc = reinterpret_cast<const int8_t*>(x + 192);
        const float d = half_at(x + 208);
        for (int h = 0; h < 2; ++h) {
          for (int l = 0; l < 32; ++l) {
            const int is = l / 16;
            const int q1 = ((ql[l + 0] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l + 0] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l + 0] = d * static_cast<float>(sc[is + 0]) * static_cast<float>(q1);
            y[l + 32] = d * static_cast<float>(sc[is + 2]) * static_cast<float>(q2);
            y[l + 64] = d * static_cast<float>(sc[is + 4]) * static_cast<float>(q3);
            y[l + 96] = d * static_cast<float>(sc[is + 6]) * static_cast<float>(q4);
          }
          y += 128;
          ql += 64;
          qh += 32;
          sc += 8;
        }
        break;
      }
    }
  }
}

void quantize_row(DType t, const float* x, int64_t n, uint8_t* out) {
  SWIFT_CHECK(n % dtype_block(t) == 0);
  switch (t) {
    case DType::kF32: std::memcpy(out, x, static_cast<size_t>(n) * 4); return;
    case DType::kF16:
      for (int64_t i = 0; i < n; ++i) put_half(out + 2 * i, x[i]);
      return;
    case DType::kBF16:
      for (int64_t i = 0; i < n; ++i) {
        const uint16_t h = f32_to_bf16(x[i]);
        std::memcpy(out + 2 * i, &h, 2);
      }
      return;
    default: break;
  }
  const int64_t nb = n / dtype_block(t), bb = dtype_block_bytes(t);
  for (int64_t b = 0; b < nb; ++b) {
    const float* v = x + b * dtype_block(t);
    uint8_t* y = out + b * bb;
    std::memset(y, 0, static_cast<size_t>(bb));
    switch (t) {
      case DType::kQ8_0: {  // ggml quantize_row_q8_0_ref
        float amax = 0.0f;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
        const float d = amax / 127.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_half(y, d);
        for (int j = 0; j < 32; ++j) y[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::roundf(v[j] * id)));
        break;
      }
      case DType::kQ4_0: {  // ggml quantize_row_q4_0_ref
        float amax = 0.0f, max = 0.0f;
        for (int j = 0; j < 32; ++j)
          if (amax < std::fabs(v[j])) amax = std::fabs(v[j]), max = v[j];
        const float d = max / -8.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
        put_half(y, d);
        for (int j = 0; j < 16; ++j) {
          const int x0 = std::min(15, static_cast<int>(static_cast<int8_t>(v[j] * id + 8.5f)));
          const int x1 = std::min(15, static_cast<int>(static_cast<int8_t>(v[16 + j] * id + 8.5f)));
          y[2 + j] = static_cast<uint8_t>(x0 | (x1 << 4));
        }
        break;
      }
      case DType::kQ4_K:
      case DType::kQ5_K: {
        // Per 32-weight sub-block: w ~ scale * q - min with q in 0..15 (Q5_K: 0..31, the 5th bit
        // of sub-block s in bit s of qh); scales and mins are then quantized to 6 bits against
        // the block's d and dmin.
        const bool five = t == DType::kQ5_K;
        const int qmax = five ? 31 : 15;
        float scale[8], mn[8], max_scale = 0, max_min = 0;
        for (int s = 0; s < 8; ++s) {
          float lo = 0.0f, hi = 0.0f;
          for (int l = 0; l < 32; ++l) lo = std::min(lo, v[s * 32 + l]), hi = std::max(hi, v[s * 32 + l]);
          scale[s] = (hi - lo) / static_cast<float>(qmax);
          mn[s] = -lo;
          max_scale = std::max(max_scale, scale[s]);
          max_min = std::max(max_min, mn[s]);
        }
        const float d = max_scale / 63.0f, dmin = max_min / 63.0f;
        put_half(y, d);
        put_half(y + 2, dmin);
        const float dq = half_at(y), dminq = half_at(y + 2);
        uint8_t ls[8], lm[8];
        for (int s = 0; s < 8; ++s) {
          ls[s] = static_cast<uint8_t>(std::clamp(dq > 0 ? nearest_int(scale[s] / dq) : 0, 0, 63));
          lm[s] = static_cast<uint8_t>(std::clamp(dminq > 0 ? nearest_int(mn[s] / dminq) : 0, 0, 63));
        }
        uint8_t* scales = y + 4;
        q4k_pack_scale_min(ls, lm, scales);
        uint8_t* qh = y + 16;
        uint8_t* qs = y + (five ? 48 : 16);
        for (int s = 0; s < 8; ++s) {
          uint8_t sc, m;
          q4k_scale_min(s, scales, &sc, &m);
          const float ds = dq * sc, ms = dminq * m;
          for (int l = 0; l < 32; ++l) {
            const int q = ds > 0 ? std::clamp(nearest_int((v[s * 32 + l] + ms) / ds), 0, qmax) : 0;
            uint8_t& byte = qs[(s / 2) * 32 + l];
            byte = static_cast<uint8_t>(byte | (s % 2 ? (q & 0xF) << 4 : q & 0xF));
            if (q > 15) qh[l] = static_cast<uint8_t>(qh[l] | (1 << s));
          }
        }
        break;
      }
      case DType::kQ6_K: {
        // Per 16-weight sub-block: w ~ scale * q with q in -32..31; scales to int8 against d.
        float scale[16], max_abs_scale = 0, max_scale = 0;
        for (int s = 0; s < 16; ++s) {
          float amax = 0, mx = 0;
          for (int l = 0; l < 16; ++l)
            if (amax < std::fabs(v[s * 16 + l])) amax = std::fabs(v[s * 16 + l]), mx = v[s * 16 + l];
          scale[s] = mx / -32.0f;
          if (std::fabs(scale[s]) > max_abs_scale) max_abs_scale = std::fabs(scale[s]), max_scale = scale[s];
        }
        const float d = max_scale / -128.0f;
        put_half(y + 208, d);
        const float dq = half_at(y + 208);
        int8_t* sc = reinterpret_cast<int8_t*>(y + 192);
        for (int s = 0; s < 16; ++s)
          sc[s] = static_cast<int8_t>(std::clamp(dq != 0 ? nearest_int(scale[s] / dq) : 0, -128, 127));
        uint8_t L[256];
        for (int s = 0; s < 16; ++s) {
          const float ds = dq * sc[s];
          for (int l = 0; l < 16; ++l)
            L[s * 16 + l] = static_cast<uint8_t>(ds != 0 ? std::clamp(nearest_int(v[s * 16 + l] / ds), -32, 31) + 32 : 32);
        }
        uint8_t* ql = y;
        uint8_t* qh = y + 128;
        for (int j = 0; j < 256; j += 128) {  // ggml's bit layout
          for (int l = 0; l < 32; ++l) {
            const uint8_t q1 = L[j + l + 0] & 0xF, q2 = L[j + l + 32] & 0xF, q3 = L[j + l + 64] & 0xF,
                          q4 = L[j + l + 96] & 0xF;
            ql[l + 0] = static_cast<uint8_t>(q1 | (q3 << 4));
            ql[l + 32] = static_cast<uint8_t>(q2 | (q4 << 4));
            qh[l] = static_cast<uint8_t>((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) | ((L[j + l + 64] >> 4) << 4) |
                                         ((L[j + l + 96] >> 4) << 6));
          }
          ql += 64;
          qh += 32;
        }
        break;
      }
      default: fail("quantize_row: {} cannot be written", dtype_name(t));
    }
  }
}

}  // namespace swift
