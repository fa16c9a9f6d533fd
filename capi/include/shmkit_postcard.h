/*
 * shmkit_postcard.h: encoders and decoders for postcard's wire format, header-only, for C
 * clients of shmkit devices written in Rust (a device's commands and replies are its Rust
 * types in postcard's format: https://postcard.jamesmunns.com/wire-format).
 *
 * Unsigned integers wider than a byte are LEB128 varints, signed ones zigzag-encoded first;
 * f32 / f64 are little-endian IEEE-754; an enum is its variant index (varint) followed by
 * its fields; a Vec or String is its length (varint) followed by its elements; u8 and bool
 * are one byte. A writer or reader that runs out of room sets `error` and writes or reads
 * nothing more, so a sequence of calls is checked once at the end.
 */
#ifndef SHMKIT_POSTCARD_H
#define SHMKIT_POSTCARD_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Encodes into a caller's buffer. */
typedef struct shmkit_pc_writer {
  uint8_t *buf;
  size_t cap;
  size_t len;
  int error;
} shmkit_pc_writer;

/** Decodes from a caller's buffer. */
typedef struct shmkit_pc_reader {
  const uint8_t *buf;
  size_t len;
  size_t pos;
  int error;
} shmkit_pc_reader;

static inline shmkit_pc_writer shmkit_pc_writer_new(void *buf, size_t cap) {
  shmkit_pc_writer w = {(uint8_t *)buf, cap, 0, 0};
  return w;
}

static inline shmkit_pc_reader shmkit_pc_reader_new(const void *buf, size_t len) {
  shmkit_pc_reader r = {(const uint8_t *)buf, len, 0, 0};
  return r;
}

static inline void shmkit_pc_put_raw(shmkit_pc_writer *w, const void *bytes, size_t n) {
  if (w->error || n > w->cap - w->len) {
    w->error = 1;
    return;
  }
  memcpy(w->buf + w->len, bytes, n);
  w->len += n;
}

static inline void shmkit_pc_put_u8(shmkit_pc_writer *w, uint8_t v) { shmkit_pc_put_raw(w, &v, 1); }

/** u16, u32, u64, usize, and enum variant indices and lengths. */
static inline void shmkit_pc_put_varint(shmkit_pc_writer *w, uint64_t v) {
  do {
    uint8_t byte = (uint8_t)(v & 0x7f);
    v >>= 7;
    if (v != 0) byte |= 0x80;
    shmkit_pc_put_u8(w, byte);
  } while (v != 0 && !w->error);
}

/** i16, i32, i64. */
static inline void shmkit_pc_put_signed(shmkit_pc_writer *w, int64_t v) {
  shmkit_pc_put_varint(w, ((uint64_t)v << 1) ^ (uint64_t)(v >> 63));
}

static inline void shmkit_pc_put_f32(shmkit_pc_writer *w, float v) {
  uint32_t bits;
  uint8_t le[4];
  memcpy(&bits, &v, 4);
  for (int i = 0; i < 4; i++) le[i] = (uint8_t)(bits >> (8 * i));
  shmkit_pc_put_raw(w, le, 4);
}

static inline void shmkit_pc_put_f64(shmkit_pc_writer *w, double v) {
  uint64_t bits;
  uint8_t le[8];
  memcpy(&bits, &v, 8);
  for (int i = 0; i < 8; i++) le[i] = (uint8_t)(bits >> (8 * i));
  shmkit_pc_put_raw(w, le, 8);
}

static inline const uint8_t *shmkit_pc_take(shmkit_pc_reader *r, size_t n) {
  if (r->error || n > r->len - r->pos) {
    r->error = 1;
    return NULL;
  }
  const uint8_t *at = r->buf + r->pos;
  r->pos += n;
  return at;
}

static inline uint8_t shmkit_pc_get_u8(shmkit_pc_reader *r) {
  const uint8_t *at = shmkit_pc_take(r, 1);
  return at ? *at : 0;
}

static inline uint64_t shmkit_pc_get_varint(shmkit_pc_reader *r) {
  uint64_t v = 0;
  for (int shift = 0; shift < 70; shift += 7) {
    uint8_t byte = shmkit_pc_get_u8(r);
    if (r->error) return 0;
    if (shift == 63 && byte > 1) break; /* more than 64 bits */
    v |= (uint64_t)(byte & 0x7f) << shift;
    if (!(byte & 0x80)) return v;
  }
  r->error = 1;
  return 0;
}

static inline int64_t shmkit_pc_get_signed(shmkit_pc_reader *r) {
  uint64_t z = shmkit_pc_get_varint(r);
  return (int64_t)(z >> 1) ^ -(int64_t)(z & 1);
}

static inline float shmkit_pc_get_f32(shmkit_pc_reader *r) {
  const uint8_t *at = shmkit_pc_take(r, 4);
  uint32_t bits = 0;
  float v = 0;
  if (!at) return 0;
  for (int i = 0; i < 4; i++) bits |= (uint32_t)at[i] << (8 * i);
  memcpy(&v, &bits, 4);
  return v;
}

static inline double shmkit_pc_get_f64(shmkit_pc_reader *r) {
  const uint8_t *at = shmkit_pc_take(r, 8);
  uint64_t bits = 0;
  double v = 0;
  if (!at) return 0;
  for (int i = 0; i < 8; i++) bits |= (uint64_t)at[i] << (8 * i);
  memcpy(&v, &bits, 8);
  return v;
}

#ifdef __cplusplus
}
#endif

#endif /* SHMKIT_POSTCARD_H */
