/*
 * A command server in C: answers REQUESTS calls on the command ring "adder" of segment NAME,
 * each a pair of i64 (postcard, as the Rust and Python `command_client` examples send them)
 * answered with their sum.
 *
 *   adder_server [NAME] [REQUESTS]      (defaults: shmkit-example 1000)
 */
#define _POSIX_C_SOURCE 200809L
#include <shmkit.h>
#include <shmkit_postcard.h>

#include <stdio.h>
#include <stdlib.h>

static int fail(const char *what, shmkit_status status) {
  fprintf(stderr, "adder_server: %s: %s: %s\n", what, shmkit_status_name(status),
          shmkit_last_error());
  return 1;
}

int main(int argc, char **argv) {
  const char *name = argc > 1 ? argv[1] : "shmkit-example";
  long requests = argc > 2 ? atol(argv[2]) : 1000;
  shmkit_segment *segment = NULL;
  shmkit_command_ring *ring = NULL;
  shmkit_command_server *server = NULL;
  shmkit_status s;

  if ((s = shmkit_segment_open_or_create(name, 8 << 20, &segment)) != SHMKIT_OK)
    return fail("segment", s);
  if ((s = shmkit_command_ring_open_or_create(segment, "adder", 4, 64, 64, &ring)) != SHMKIT_OK)
    return fail("ring", s);
  if ((s = shmkit_command_server_new(ring, &server)) != SHMKIT_OK) return fail("server", s);
  printf("adder_server: adding numbers for clients of \"%s\"/adder\n", name);
  fflush(stdout);

  for (long served = 1; served <= requests; served++) {
    const uint8_t *request;
    size_t len;
    if ((s = shmkit_command_server_recv(server, 30000000000LL, &request, &len)) != SHMKIT_OK)
      return fail("receive", s);
    shmkit_pc_reader r = shmkit_pc_reader_new(request, len);
    int64_t a = shmkit_pc_get_signed(&r);
    int64_t b = shmkit_pc_get_signed(&r);
    if (r.error) {
      s = shmkit_command_server_fail(server, "the request is not a pair of i64");
    } else {
      uint8_t reply[16];
      shmkit_pc_writer w = shmkit_pc_writer_new(reply, sizeof reply);
      shmkit_pc_put_signed(&w, a + b);
      s = shmkit_command_server_reply(server, reply, w.len, NULL);
    }
    if (s != SHMKIT_OK) return fail("reply", s);
    if (served % 250 == 0) {
      printf("adder_server: %ld requests answered\n", served);
      fflush(stdout);
    }
  }
  shmkit_command_server_free(server);
  shmkit_command_ring_free(ring);
  shmkit_segment_close(segment);
  return 0;
}
