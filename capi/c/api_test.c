/*
 * The C API's contract, checked from C: NULL and bad arguments, the owner-died outcome after
 * a holder process dies, timeouts, barrier and event across processes, frames held in place
 * while the writer moves on, out-of-order calls, command-ring failures and interrupts.
 * Exits 0 when every check passes; prints each failed check.
 *
 *   api_test               (runs the checks; re-executes itself for the helper processes)
 *   api_test child ROLE SEGMENT
 */
#define _POSIX_C_SOURCE 200809L
#include <shmkit.h>

#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int failures = 0;
#define CHECK(cond)                                                                     \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      fprintf(stderr, "api_test:%d: check failed: %s (last error: %s)\n", __LINE__, #cond, \
              shmkit_last_error());                                                     \
      failures++;                                                                       \
    }                                                                                   \
  } while (0)
#define MS 1000000LL

static const char *self_path;

static pid_t spawn(const char *role, const char *segment) {
  pid_t pid = fork();
  if (pid == 0) {
    execl(self_path, self_path, "child", role, segment, (char *)NULL);
    _exit(127);
  }
  return pid;
}

static int child(const char *role, const char *name) {
  shmkit_segment *seg = NULL;
  if (shmkit_segment_open(name, &seg) != SHMKIT_OK) return 10;
  if (!strcmp(role, "die-holding")) {
    shmkit_mutex *m = NULL;
    shmkit_event *held = NULL;
    if (shmkit_mutex_open(seg, "m", &m) || shmkit_event_open(seg, "held", &held)) return 11;
    if (shmkit_mutex_lock(m, -1) != SHMKIT_OK) return 12;
    shmkit_event_set(held);
    _exit(0); /* dies holding the mutex */
  }
  if (!strcmp(role, "barrier")) {
    shmkit_barrier *b = NULL;
    shmkit_event *go = NULL;
    uint32_t index = 99;
    if (shmkit_barrier_open(seg, "b", 2, &b) || shmkit_event_open(seg, "go", &go)) return 13;
    if (shmkit_barrier_wait(b, 10000 * MS, &index) != SHMKIT_OK) return 14;
    shmkit_event_set(go);
    return index <= 1 ? 0 : 15;
  }
  return 16;
}

static void *fail_one(void *server) {
  const uint8_t *req;
  size_t len;
  if (shmkit_command_server_recv(server, 10000 * MS, &req, &len) == SHMKIT_OK && len == 3 &&
      !memcmp(req, "abc", 3))
    shmkit_command_server_fail(server, "nope");
  return NULL;
}

/* Publishes one frame from its own thread (the writer moves to it until joined). */
static void *publish_one(void *arg) {
  shmkit_frame_writer *w = arg;
  uint8_t *data;
  size_t size;
  if (shmkit_frame_writer_claim(w, 1000 * MS, &data, &size) == SHMKIT_OK) {
    memset(data, 0x5A, size);
    (void)shmkit_frame_writer_publish(w, NULL);
  }
  return NULL;
}

static void *interrupt_later(void *arg) {
  (void)arg;
  struct timespec t = {0, 50 * MS};
  nanosleep(&t, NULL);
  shmkit_interrupt();
  return NULL;
}

int main(int argc, char **argv) {
  self_path = argv[0];
  if (argc == 4 && !strcmp(argv[1], "child")) return child(argv[2], argv[3]);

  char name[64];
  snprintf(name, sizeof name, "shmkit-c-api-test-%d", (int)getpid());
  shmkit_segment_unlink(name);

  /* Arguments. */
  shmkit_segment *seg = NULL;
  CHECK(shmkit_segment_create(name, 8 << 20, NULL) == SHMKIT_E_NULL);
  CHECK(strstr(shmkit_last_error(), "out") != NULL);
  CHECK(shmkit_segment_create(NULL, 8 << 20, &seg) == SHMKIT_E_NULL);
  CHECK(shmkit_segment_create("bad/name", 8 << 20, &seg) == SHMKIT_E_INVALID);
  CHECK(shmkit_segment_create("\xff\xfe", 8 << 20, &seg) == SHMKIT_E_INVALID);
  CHECK(shmkit_segment_open("shmkit-c-api-test-no-such-segment", &seg) == SHMKIT_E_NOT_FOUND);
  CHECK(seg == NULL);
  CHECK(shmkit_segment_create(name, 8 << 20, &seg) == SHMKIT_OK);
  CHECK(shmkit_segment_create(name, 8 << 20, &seg) == SHMKIT_E_EXISTS);
  CHECK(strcmp(shmkit_status_name(SHMKIT_E_TIMEOUT), "SHMKIT_E_TIMEOUT") == 0);
  CHECK(strcmp(shmkit_status_name(12345), "SHMKIT_UNKNOWN") == 0);
  CHECK(shmkit_mutex_lock(NULL, 0) == SHMKIT_E_NULL);
  CHECK(shmkit_event_is_set(NULL) == -1);
  shmkit_mutex_free(NULL);
  shmkit_frame_release(NULL);

  /* Mutex: re-entrant, owned by the thread, owner died, timeouts. */
  shmkit_mutex *m = NULL;
  shmkit_event *held = NULL;
  CHECK(shmkit_mutex_open(seg, "m", &m) == SHMKIT_OK);
  CHECK(shmkit_event_open(seg, "held", &held) == SHMKIT_OK);
  CHECK(shmkit_mutex_unlock(m) == SHMKIT_E_NOT_OWNER);
  CHECK(shmkit_mutex_lock(m, 0) == SHMKIT_OK);
  CHECK(shmkit_mutex_lock(m, 0) == SHMKIT_OK);
  CHECK(shmkit_mutex_unlock(m) == SHMKIT_OK);
  CHECK(shmkit_mutex_unlock(m) == SHMKIT_OK);
  CHECK(shmkit_mutex_unlock(m) == SHMKIT_E_NOT_OWNER);
  CHECK(shmkit_event_wait(held, 20 * MS) == SHMKIT_E_TIMEOUT);
  pid_t pid = spawn("die-holding", name);
  CHECK(shmkit_event_wait(held, 10000 * MS) == SHMKIT_OK);
  int status = -1;
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK(shmkit_mutex_lock(m, 5000 * MS) == SHMKIT_OWNER_DIED);
  CHECK(shmkit_mutex_make_consistent(m) == SHMKIT_OK);
  CHECK(shmkit_mutex_unlock(m) == SHMKIT_OK);
  CHECK(shmkit_mutex_lock(m, 0) == SHMKIT_OK);
  CHECK(shmkit_mutex_unlock(m) == SHMKIT_OK);

  /* Barrier and event across processes. */
  shmkit_barrier *b = NULL;
  shmkit_event *go = NULL;
  uint32_t index = 99;
  CHECK(shmkit_barrier_open(seg, "b", 2, &b) == SHMKIT_OK);
  CHECK(shmkit_event_open(seg, "go", &go) == SHMKIT_OK);
  pid = spawn("barrier", name);
  CHECK(shmkit_barrier_wait(b, 10000 * MS, &index) == SHMKIT_OK);
  CHECK(index <= 1);
  CHECK(shmkit_event_wait(go, 10000 * MS) == SHMKIT_OK);
  CHECK(shmkit_event_is_set(go) == 1);
  waitpid(pid, &status, 0);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  shmkit_barrier *b3 = NULL;
  CHECK(shmkit_barrier_open(seg, "b", 3, &b3) == SHMKIT_E_MISMATCH);
  CHECK(shmkit_barrier_wait(b, 20 * MS, NULL) == SHMKIT_E_TIMEOUT);
  CHECK(shmkit_barrier_wait(b, 20 * MS, NULL) == SHMKIT_E_BROKEN);
  CHECK(shmkit_barrier_reset(b) == SHMKIT_OK);

  /* Interrupt: a wait without deadline ends within 100 ms of shmkit_interrupt(). */
  pthread_t t;
  shmkit_event *never = NULL;
  CHECK(shmkit_event_open(seg, "never", &never) == SHMKIT_OK);
  pthread_create(&t, NULL, interrupt_later, NULL);
  CHECK(shmkit_event_wait(never, -1) == SHMKIT_E_INTERRUPTED);
  pthread_join(t, NULL);
  shmkit_interrupt_clear();

  /* Frames: geometry, out-of-order calls, a held frame unchanged while the writer moves on. */
  shmkit_frame_ring *ring = NULL;
  shmkit_frame_writer *w = NULL, *w2 = NULL;
  shmkit_frame_reader *r = NULL;
  const uint32_t shape[2] = {4, 8};
  CHECK(shmkit_frame_ring_open_or_create(seg, "f", 3, 99, shape, 2, &ring) == SHMKIT_E_INVALID);
  CHECK(shmkit_frame_ring_open_or_create(seg, "f", 3, SHMKIT_U32, shape, 0, &ring) ==
        SHMKIT_E_INVALID);
  CHECK(shmkit_frame_ring_open_or_create(seg, "f", 3, SHMKIT_U32, shape, 2, &ring) == SHMKIT_OK);
  shmkit_frame_ring_info info;
  CHECK(shmkit_frame_ring_get_info(ring, &info) == SHMKIT_OK);
  CHECK(info.slots == 3 && info.elem == SHMKIT_U32 && info.ndim == 2 && info.shape[0] == 4 &&
        info.shape[1] == 8 && info.max_bytes == 128);
  CHECK(shmkit_frame_writer_new(ring, &w) == SHMKIT_OK);
  CHECK(shmkit_frame_writer_new(ring, &w2) == SHMKIT_E_BUSY);
  CHECK(shmkit_frame_reader_new(ring, 7, &r) == SHMKIT_E_INVALID);
  CHECK(shmkit_frame_reader_new(ring, SHMKIT_OLDEST_FIRST, &r) == SHMKIT_OK);
  shmkit_frame frame = {0}, other = {0};
  CHECK(shmkit_frame_reader_latest(r, &frame) == SHMKIT_E_NOT_FOUND);
  CHECK(shmkit_frame_reader_next(r, 10 * MS, &frame) == SHMKIT_E_TIMEOUT);
  CHECK(shmkit_frame_writer_publish(w, NULL) == SHMKIT_E_STATE);
  uint8_t *data;
  size_t size;
  uint64_t id = 0;
  CHECK(shmkit_frame_writer_claim(w, 0, &data, &size) == SHMKIT_OK);
  CHECK(size == 128);
  CHECK(shmkit_frame_writer_claim(w, 0, &data, &size) == SHMKIT_E_STATE);
  CHECK(shmkit_frame_writer_set_user(w, 5, 1) == SHMKIT_E_INVALID);
  memset(data, 0xAB, size);
  CHECK(shmkit_frame_writer_set_user(w, 4, 77) == SHMKIT_OK);
  CHECK(shmkit_frame_writer_publish(w, &id) == SHMKIT_OK);
  CHECK(id == 1);
  CHECK(shmkit_frame_reader_next(r, 1000 * MS, &frame) == SHMKIT_OK);
  CHECK(frame.id == 1 && frame.size == 128 && frame.user[4] == 77 && frame.data[127] == 0xAB);
  CHECK(shmkit_frame_reader_next(r, 0, &frame) == SHMKIT_E_STATE); /* still held */
  /* The writer cycles the other two slots; the held frame never changes. */
  for (int n = 0; n < 6; n++) {
    CHECK(shmkit_frame_writer_claim(w, 1000 * MS, &data, &size) == SHMKIT_OK);
    memset(data, n, size);
    CHECK(shmkit_frame_writer_publish(w, &id) == SHMKIT_OK);
  }
  CHECK(frame.data[0] == 0xAB && frame.data[127] == 0xAB && frame.id == 1);
  /* Claiming and abandoning leaves the readers' view as it was. */
  CHECK(shmkit_frame_writer_claim(w, 0, &data, &size) == SHMKIT_OK);
  CHECK(shmkit_frame_writer_abandon(w) == SHMKIT_OK);
  CHECK(shmkit_frame_release(&frame) == SHMKIT_OK);
  CHECK(shmkit_frame_release(&frame) == SHMKIT_OK); /* a second release is a no-op */
  CHECK(shmkit_frame_reader_next(r, 1000 * MS, &other) == SHMKIT_E_OVERRUN);
  CHECK(shmkit_frame_reader_next(r, 1000 * MS, &other) == SHMKIT_OK);
  shmkit_frame_reader_free(r); /* the frame outlives its reader */
  CHECK(other.id >= 5 && other.data[0] == (uint8_t)(other.id - 2));
  CHECK(shmkit_frame_release(&other) == SHMKIT_OK);
  /* Wait strategies: a spinning reader keeps its timeout and the interrupt, and reads. */
  CHECK(shmkit_frame_reader_new(ring, SHMKIT_NEWEST, &r) == SHMKIT_OK);
  CHECK(shmkit_frame_reader_set_wait(r, 3) == SHMKIT_E_INVALID);
  CHECK(shmkit_frame_reader_set_wait(NULL, SHMKIT_WAIT_SPIN) == SHMKIT_E_NULL);
  CHECK(shmkit_frame_reader_set_wait(r, SHMKIT_WAIT_SPIN) == SHMKIT_OK);
  CHECK(shmkit_frame_reader_next(r, 10 * MS, &frame) == SHMKIT_E_TIMEOUT);
  shmkit_interrupt();
  CHECK(shmkit_frame_reader_next(r, -1, &frame) == SHMKIT_E_INTERRUPTED);
  shmkit_interrupt_clear();
  pthread_create(&t, NULL, publish_one, w);
  CHECK(shmkit_frame_reader_next(r, 10000 * MS, &frame) == SHMKIT_OK && frame.data[0] == 0x5A);
  pthread_join(t, NULL);
  CHECK(shmkit_frame_release(&frame) == SHMKIT_OK);
  CHECK(shmkit_frame_reader_set_wait(r, SHMKIT_WAIT_SPIN_THEN_BLOCK) == SHMKIT_OK);
  pthread_create(&t, NULL, publish_one, w);
  CHECK(shmkit_frame_reader_next(r, 10000 * MS, &frame) == SHMKIT_OK && frame.data[0] == 0x5A);
  pthread_join(t, NULL);
  CHECK(shmkit_frame_release(&frame) == SHMKIT_OK);
  shmkit_frame_reader_free(r);
  shmkit_frame_writer_free(w);
  shmkit_frame_ring_free(ring);

  /* Command rings: no server, failures, small buffers, timeouts. */
  shmkit_command_ring *cmd = NULL;
  shmkit_command_server *srv = NULL, *srv2 = NULL;
  uint8_t reply[8];
  size_t reply_len = 0;
  shmkit_outcome outcome = SHMKIT_UNKNOWN;
  CHECK(shmkit_command_ring_open_or_create(seg, "c", 2, 16, 16, &cmd) == SHMKIT_OK);
  CHECK(shmkit_command_ring_max_reply(cmd) == 16 && shmkit_command_ring_max_request(cmd) == 16);
  CHECK(shmkit_command_call(cmd, (const uint8_t *)"x", 1, reply, sizeof reply, &reply_len,
                            10 * MS, &outcome) == SHMKIT_E_NO_SERVER);
  CHECK(outcome == SHMKIT_NOT_EXECUTED);
  CHECK(shmkit_command_server_new(cmd, &srv) == SHMKIT_OK);
  CHECK(shmkit_command_server_new(cmd, &srv2) == SHMKIT_E_BUSY);
  CHECK(shmkit_command_call(cmd, (const uint8_t *)"0123456789abcdefg", 17, reply, sizeof reply,
                            &reply_len, 10 * MS, &outcome) == SHMKIT_E_TOO_LARGE);
  CHECK(shmkit_command_call(cmd, (const uint8_t *)"x", 1, reply, sizeof reply, &reply_len,
                            20 * MS, &outcome) == SHMKIT_E_TIMEOUT);
  CHECK(shmkit_command_server_reply(srv, (const uint8_t *)"r", 1, NULL) == SHMKIT_E_STATE);
  pthread_create(&t, NULL, fail_one, srv);
  CHECK(shmkit_command_call(cmd, (const uint8_t *)"abc", 3, reply, sizeof reply, &reply_len,
                            10000 * MS, &outcome) == SHMKIT_E_FAILED);
  CHECK(strcmp(shmkit_last_error(), "nope") == 0);
  CHECK(outcome == SHMKIT_EXECUTED);
  pthread_join(t, NULL);
  shmkit_command_server_free(srv);
  shmkit_command_ring_free(cmd);

  shmkit_event_free(held);
  shmkit_event_free(go);
  shmkit_event_free(never);
  shmkit_barrier_free(b);
  shmkit_mutex_free(m);
  CHECK(shmkit_segment_close(seg) == SHMKIT_OK);
  CHECK(shmkit_segment_unlink(name) == SHMKIT_OK);
  if (failures) {
    fprintf(stderr, "api_test: %d checks failed\n", failures);
    return 1;
  }
  printf("api_test: every check passed\n");
  return 0;
}
