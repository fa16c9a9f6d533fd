/*
 * A controller in C: reads the newest frames of the ring "camera" (written by the C camera,
 * or by any Rust or Python writer) in place, checks each one (frame n is all n, tagged n),
 * and commands the Rust mirror server "Dm" (shmkit-sim's `SimDm`, 12 x 12 actuators) with
 * the frame's mean, tagged with the frame's id; the mirror's reply names the shape frame it
 * published.
 *
 *   controller NAME FRAMES [DM]      (DM: the mirror's device name; none: frames only)
 */
#define _POSIX_C_SOURCE 200809L
#include <shmkit.h>
#include <shmkit_postcard.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define ACTUATORS (12 * 12)

static int fail(const char *what, shmkit_status status) {
  fprintf(stderr, "controller: %s: %s: %s\n", what, shmkit_status_name(status),
          shmkit_last_error());
  return 1;
}

/* The ring appears when the camera starts: wait for it, up to 30 s. */
static shmkit_status open_ring(const char *name, shmkit_segment **segment,
                               shmkit_frame_ring **ring) {
  shmkit_status s = SHMKIT_E_NOT_FOUND;
  for (int tries = 0; tries < 1500; tries++) {
    if (!*segment) s = shmkit_segment_open(name, segment);
    if (*segment) s = shmkit_frame_ring_open(*segment, "camera", ring);
    if (s == SHMKIT_OK) return s;
    if (s != SHMKIT_E_NOT_FOUND) return s;
    struct timespec wait = {0, 20000000};
    nanosleep(&wait, NULL);
  }
  return s;
}

/* DmCommand::Set { values, tag } in postcard: variant 0, the Vec<f32>, the u64. */
static size_t encode_set(uint8_t *buf, size_t cap, float value, uint64_t tag) {
  shmkit_pc_writer w = shmkit_pc_writer_new(buf, cap);
  shmkit_pc_put_varint(&w, 0);
  shmkit_pc_put_varint(&w, ACTUATORS);
  for (int i = 0; i < ACTUATORS; i++) shmkit_pc_put_f32(&w, value);
  shmkit_pc_put_varint(&w, tag);
  return w.error ? 0 : w.len;
}

int main(int argc, char **argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: controller NAME FRAMES [DM]\n");
    return 2;
  }
  const char *name = argv[1];
  long frames = atol(argv[2]);
  const char *dm_name = argc > 3 ? argv[3] : NULL;
  shmkit_segment *segment = NULL;
  shmkit_frame_ring *ring = NULL;
  shmkit_frame_reader *reader = NULL;
  shmkit_device *dm = NULL;
  shmkit_status s;

  if ((s = open_ring(name, &segment, &ring)) != SHMKIT_OK) return fail("ring", s);
  if ((s = shmkit_frame_reader_new(ring, SHMKIT_NEWEST, &reader)) != SHMKIT_OK)
    return fail("reader", s);
  if (dm_name && (s = shmkit_device_open(segment, dm_name, &dm)) != SHMKIT_OK)
    return fail("mirror", s);

  uint64_t last = 0, skipped = 0, commands = 0;
  uint8_t request[1024], reply[256];
  for (long k = 0; k < frames; k++) {
    shmkit_frame frame = {0};
    if ((s = shmkit_frame_reader_next(reader, 5000000000LL, &frame)) != SHMKIT_OK)
      return fail("next frame", s);
    /* The frame is held in place: the camera writes other slots until it is released. */
    const uint16_t *pixels = (const uint16_t *)frame.data;
    size_t count = frame.size / sizeof(uint16_t);
    uint16_t expected = (uint16_t)frame.user[0];
    double sum = 0;
    for (size_t i = 0; i < count; i++) {
      if (pixels[i] != expected) {
        fprintf(stderr, "controller: frame %llu pixel %zu is %u, not %u\n",
                (unsigned long long)frame.id, i, pixels[i], expected);
        return 1;
      }
      sum += pixels[i];
    }
    if (last) skipped += frame.id - last - 1;
    last = frame.id;
    uint64_t id = frame.id;
    shmkit_frame_release(&frame);

    if (dm) {
      float command = (float)(sum / (double)count / 65535.0);
      size_t len = encode_set(request, sizeof request, command, id);
      size_t reply_len = 0;
      shmkit_outcome outcome;
      s = shmkit_device_call(dm, request, len, reply, sizeof reply, &reply_len, 5000000000LL,
                             &outcome);
      if (s != SHMKIT_OK) return fail("mirror command", s);
      /* DmReply::Applied { frame, clipped, applied_ns } */
      shmkit_pc_reader r = shmkit_pc_reader_new(reply, reply_len);
      uint64_t variant = shmkit_pc_get_varint(&r);
      uint64_t shape_frame = shmkit_pc_get_varint(&r);
      uint64_t clipped = shmkit_pc_get_varint(&r);
      (void)shmkit_pc_get_varint(&r);
      if (r.error || variant != 0 || shape_frame == 0 || clipped != 0) {
        fprintf(stderr, "controller: unexpected mirror reply (variant %llu, frame %llu)\n",
                (unsigned long long)variant, (unsigned long long)shape_frame);
        return 1;
      }
      commands++;
    }
  }
  printf("controller: %ld frames checked in place, %llu skipped as newest-only, %llu mirror "
         "commands applied\n",
         frames, (unsigned long long)skipped, (unsigned long long)commands);
  shmkit_device_free(dm);
  shmkit_frame_reader_free(reader);
  shmkit_frame_ring_free(ring);
  shmkit_segment_close(segment);
  return 0;
}
