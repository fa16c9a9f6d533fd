/*
 * A camera in C: publishes FRAMES frames of 64 x 64 uint16 pixels into the frame ring
 * "camera" of segment NAME at 500 Hz, frame n filled with n and tagged n in user word 0 —
 * the frames the Rust and Python `frames_reader` examples check, zero-copy.
 *
 *   camera [NAME] [FRAMES]      (defaults: shmkit-example 2000)
 */
#define _POSIX_C_SOURCE 200809L
#include <shmkit.h>

#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static int fail(const char *what, shmkit_status status) {
  fprintf(stderr, "camera: %s: %s: %s\n", what, shmkit_status_name(status), shmkit_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "shmkit-example";
  long frames = argc > 2 ? atol(argv[2]) : 2000;
  shmkit_segment *segment = NULL;
  shmkit_frame_ring *ring = NULL;
  shmkit_frame_writer *writer = NULL;
  const uint32_t shape[2] = {64, 64};
  shmkit_status s;

  if ((s = shmkit_segment_open_or_create(name, 8 << 20, &segment)) != SHMKIT_OK)
    return fail("segment", s);
  if ((s = shmkit_frame_ring_open_or_create(segment, "camera", 8, SHMKIT_U16, shape, 2, &ring)) !=
      SHMKIT_OK)
    return fail("ring", s);
  /* One writer per ring: a second one, in any process, is refused. */
  if ((s = shmkit_frame_writer_new(ring, &writer)) != SHMKIT_OK) return fail("writer", s);

  printf("camera: publishing %ld frames into \"%s\"/camera at 500 Hz\n", frames, name);
  fflush(stdout);
  for (long n = 0; n < frames; n++) {
    uint8_t *data;
    size_t size;
    uint64_t id;
    if ((s = shmkit_frame_writer_claim(writer, 0, &data, &size)) != SHMKIT_OK)
      return fail("claim", s);
    uint16_t *pixels = (uint16_t *)data; /* slots are 64-byte aligned */
    for (size_t i = 0; i < size / sizeof(uint16_t); i++) pixels[i] = (uint16_t)n;
    shmkit_frame_writer_set_user(writer, 0, (uint64_t)n);
    if ((s = shmkit_frame_writer_publish(writer, &id)) != SHMKIT_OK) return fail("publish", s);
    if (id % 500 == 0) {
      printf("camera: published frame %llu\n", (unsigned long long)id);
      fflush(stdout);
    }
    struct timespec period = {0, 2000000};
    nanosleep(&period, NULL);
  }
  printf("camera: done\n");
  shmkit_frame_writer_free(writer);
  shmkit_frame_ring_free(ring);
  shmkit_segment_close(segment);
  return 0;
}
