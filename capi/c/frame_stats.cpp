// A C++ reader: takes FRAMES frames of the ring "camera" in segment NAME (written by the C
// camera or the Rust / Python frames_writer), each held in place by a shmkit::Frame, checks
// it (frame n is all n, tagged n), and counts them under a process-shared mutex guard.
//
//   frame_stats NAME FRAMES
#include <shmkit.hpp>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

int main(int argc, char **argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: frame_stats NAME FRAMES\n");
    return 2;
  }
  using namespace std::chrono_literals;
  const long frames = std::atol(argv[2]);
  try {
    // The camera may start after us: wait up to 30 s for its ring.
    auto deadline = std::chrono::steady_clock::now() + 30s;
    for (;;) {
      try {
        shmkit::Segment seg = shmkit::Segment::open(argv[1]);
        shmkit::FrameRing ring = seg.frame_ring("camera");
        shmkit::FrameReader reader(ring, SHMKIT_NEWEST);
        reader.set_wait(SHMKIT_WAIT_SPIN_THEN_BLOCK);  // a frame that comes quickly costs no wake-up
        shmkit::Mutex stats_lock = seg.mutex("frame_stats/lock");
        long checked = 0;
        for (long k = 0; k < frames; k++) {
          shmkit::Frame frame = reader.next(5s);
          const uint16_t *pixels = frame.as<uint16_t>();
          const uint16_t expected = static_cast<uint16_t>(frame.user(0));
          for (size_t i = 0; i < frame.size() / sizeof(uint16_t); i++) {
            if (pixels[i] != expected) {
              std::fprintf(stderr, "frame_stats: frame %llu pixel %zu is %u, not %u\n",
                           static_cast<unsigned long long>(frame.id()), i, pixels[i], expected);
              return 1;
            }
          }
          shmkit::LockGuard guard(stats_lock, 1s);
          if (guard.owner_died()) guard.mutex().make_consistent();
          checked++;
        }
        std::printf("frame_stats: %ld frames checked in place\n", checked);
        return 0;
      } catch (const shmkit::Error &e) {
        if (e.status() != SHMKIT_E_NOT_FOUND || std::chrono::steady_clock::now() > deadline)
          throw;
        std::this_thread::sleep_for(20ms);
      }
    }
  } catch (const shmkit::Error &e) {
    std::fprintf(stderr, "frame_stats: %s\n", e.what());
    return 1;
  }
}
