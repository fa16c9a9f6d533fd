// shmkit.hpp: a header-only C++17 wrapper of shmkit.h — handles that free themselves, guards
// for locks and held frames, errors as exceptions (shmkit::Error, carrying the status).
//
//   shmkit::Segment seg = shmkit::Segment::open("bench");
//   shmkit::FrameReader reader(seg.frame_ring("camera"), SHMKIT_NEWEST);
//   shmkit::Frame frame = reader.next(std::chrono::seconds(5));   // held until destroyed
//   shmkit::Mutex lock = seg.mutex("state");
//   { shmkit::LockGuard guard(lock, std::chrono::seconds(1)); ... }
#ifndef SHMKIT_HPP
#define SHMKIT_HPP

#include <shmkit.h>

#include <chrono>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <utility>

namespace shmkit {

/// A failed call: its status and shmkit's message.
class Error : public std::runtime_error {
 public:
  Error(shmkit_status status, const std::string &what)
      : std::runtime_error(what + ": " + shmkit_status_name(status) + ": " + shmkit_last_error()),
        status_(status) {}
  shmkit_status status() const noexcept { return status_; }

 private:
  shmkit_status status_;
};

namespace detail {
inline void check(shmkit_status status, const char *what) {
  if (status < 0) throw Error(status, what);
}

template <class Rep, class Period>
int64_t nanos(std::chrono::duration<Rep, Period> d) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
}

/// A move-only owner of a C handle and its free function.
template <class T, void (*Free)(T *)>
class Handle {
 public:
  Handle() noexcept = default;
  explicit Handle(T *raw) noexcept : raw_(raw) {}
  Handle(Handle &&other) noexcept : raw_(std::exchange(other.raw_, nullptr)) {}
  Handle &operator=(Handle &&other) noexcept {
    if (this != &other) {
      reset();
      raw_ = std::exchange(other.raw_, nullptr);
    }
    return *this;
  }
  Handle(const Handle &) = delete;
  Handle &operator=(const Handle &) = delete;
  ~Handle() { reset(); }
  T *get() const noexcept { return raw_; }
  void reset() noexcept {
    if (raw_) Free(std::exchange(raw_, nullptr));
  }

 private:
  T *raw_ = nullptr;
};

inline void close_segment(shmkit_segment *s) { (void)shmkit_segment_close(s); }
}  // namespace detail

/// A robust recursive process-shared mutex.
class Mutex {
 public:
  explicit Mutex(shmkit_mutex *raw) : h_(raw) {}
  /// Locks; true if the previous holder died inside its critical section (the caller holds
  /// it and must repair, then make_consistent()).
  template <class Rep, class Period>
  bool lock(std::chrono::duration<Rep, Period> timeout) {
    shmkit_status s = shmkit_mutex_lock(h_.get(), detail::nanos(timeout));
    detail::check(s, "locking a mutex");
    return s == SHMKIT_OWNER_DIED;
  }
  void unlock() { detail::check(shmkit_mutex_unlock(h_.get()), "unlocking a mutex"); }
  void make_consistent() {
    detail::check(shmkit_mutex_make_consistent(h_.get()), "making a mutex consistent");
  }

 private:
  detail::Handle<shmkit_mutex, shmkit_mutex_free> h_;
};

/// Holds a Mutex for a scope.
class LockGuard {
 public:
  template <class Rep, class Period>
  LockGuard(Mutex &m, std::chrono::duration<Rep, Period> timeout)
      : m_(&m), owner_died_(m.lock(timeout)) {}
  LockGuard(const LockGuard &) = delete;
  LockGuard &operator=(const LockGuard &) = delete;
  ~LockGuard() {
    if (m_) (void)shmkit_mutex_unlock_noexcept();
  }
  /// Whether the previous holder died (repair, then mutex().make_consistent()).
  bool owner_died() const noexcept { return owner_died_; }
  Mutex &mutex() const noexcept { return *m_; }

 private:
  bool shmkit_mutex_unlock_noexcept() noexcept {
    try {
      m_->unlock();
      return true;
    } catch (...) {
      return false;
    }
  }
  Mutex *m_;
  bool owner_died_;
};

/// A process-shared event.
class Event {
 public:
  explicit Event(shmkit_event *raw) : h_(raw) {}
  void set() { detail::check(shmkit_event_set(h_.get()), "setting an event"); }
  void clear() { detail::check(shmkit_event_clear(h_.get()), "clearing an event"); }
  bool is_set() const { return shmkit_event_is_set(h_.get()) == 1; }
  /// True once set; false on timeout.
  template <class Rep, class Period>
  bool wait(std::chrono::duration<Rep, Period> timeout) {
    shmkit_status s = shmkit_event_wait(h_.get(), detail::nanos(timeout));
    if (s == SHMKIT_E_TIMEOUT) return false;
    detail::check(s, "waiting for an event");
    return true;
  }

 private:
  detail::Handle<shmkit_event, shmkit_event_free> h_;
};

/// A frame held in place until it is destroyed (move-only: the hold moves with it).
class Frame {
 public:
  Frame() noexcept : f_() {}
  Frame(Frame &&other) noexcept : f_(other.f_) { other.f_ = shmkit_frame(); }
  Frame &operator=(Frame &&other) noexcept {
    if (this != &other) {
      (void)shmkit_frame_release(&f_);
      f_ = other.f_;
      other.f_ = shmkit_frame();
    }
    return *this;
  }
  Frame(const Frame &) = delete;
  Frame &operator=(const Frame &) = delete;
  ~Frame() { (void)shmkit_frame_release(&f_); }

  const uint8_t *data() const noexcept { return f_.data; }
  size_t size() const noexcept { return f_.size; }
  uint64_t id() const noexcept { return f_.id; }
  uint64_t ts_ns() const noexcept { return f_.ts_ns; }
  uint64_t user(size_t i) const noexcept { return i < 5 ? f_.user[i] : 0; }
  /// The pixels as T (the ring's element type; slots are 64-byte aligned).
  template <class T>
  const T *as() const noexcept {
    return reinterpret_cast<const T *>(f_.data);
  }
  shmkit_frame *raw() noexcept { return &f_; }

 private:
  shmkit_frame f_;
};

/// A frame ring.
class FrameRing {
 public:
  explicit FrameRing(shmkit_frame_ring *raw) : h_(raw) {}
  shmkit_frame_ring_info info() const {
    shmkit_frame_ring_info i{};
    detail::check(shmkit_frame_ring_get_info(h_.get(), &i), "reading a ring's geometry");
    return i;
  }
  shmkit_frame_ring *get() const noexcept { return h_.get(); }

 private:
  detail::Handle<shmkit_frame_ring, shmkit_frame_ring_free> h_;
};

/// A ring's reader.
class FrameReader {
 public:
  FrameReader(const FrameRing &ring, shmkit_read_mode mode) {
    shmkit_frame_reader *raw = nullptr;
    detail::check(shmkit_frame_reader_new(ring.get(), static_cast<uint32_t>(mode), &raw),
                  "registering a reader");
    h_ = detail::Handle<shmkit_frame_reader, shmkit_frame_reader_free>(raw);
  }
  template <class Rep, class Period>
  Frame next(std::chrono::duration<Rep, Period> timeout) {
    Frame frame;
    detail::check(shmkit_frame_reader_next(h_.get(), detail::nanos(timeout), frame.raw()),
                  "reading a frame");
    return frame;
  }
  /// How next() waits from now on (block, spin, or spin then block).
  void set_wait(shmkit_wait wait) {
    detail::check(shmkit_frame_reader_set_wait(h_.get(), static_cast<uint32_t>(wait)),
                  "setting a reader's wait");
  }

 private:
  detail::Handle<shmkit_frame_reader, shmkit_frame_reader_free> h_;
};

/// A ring's single writer.
class FrameWriter {
 public:
  explicit FrameWriter(const FrameRing &ring) {
    shmkit_frame_writer *raw = nullptr;
    detail::check(shmkit_frame_writer_new(ring.get(), &raw), "taking a ring's writer role");
    h_ = detail::Handle<shmkit_frame_writer, shmkit_frame_writer_free>(raw);
  }

  /// A claimed slot: fill data(), then publish(); destroyed unpublished, it is abandoned.
  class Slot {
   public:
    Slot(Slot &&other) noexcept
        : w_(std::exchange(other.w_, nullptr)), data_(other.data_), size_(other.size_) {}
    Slot(const Slot &) = delete;
    Slot &operator=(const Slot &) = delete;
    Slot &operator=(Slot &&) = delete;
    ~Slot() {
      if (w_) (void)shmkit_frame_writer_abandon(w_);
    }
    uint8_t *data() const noexcept { return data_; }
    size_t size() const noexcept { return size_; }
    void set_user(uint32_t i, uint64_t v) {
      detail::check(shmkit_frame_writer_set_user(w_, i, v), "setting a user word");
    }
    uint64_t publish() {
      uint64_t id = 0;
      detail::check(shmkit_frame_writer_publish(std::exchange(w_, nullptr), &id), "publishing");
      return id;
    }

   private:
    friend class FrameWriter;
    Slot(shmkit_frame_writer *w, uint8_t *data, size_t size) : w_(w), data_(data), size_(size) {}
    shmkit_frame_writer *w_;
    uint8_t *data_;
    size_t size_;
  };

  template <class Rep, class Period>
  Slot claim(std::chrono::duration<Rep, Period> timeout) {
    uint8_t *data = nullptr;
    size_t size = 0;
    detail::check(shmkit_frame_writer_claim(h_.get(), detail::nanos(timeout), &data, &size),
                  "claiming a slot");
    return Slot(h_.get(), data, size);
  }

 private:
  detail::Handle<shmkit_frame_writer, shmkit_frame_writer_free> h_;
};

/// A segment, and the objects found or created in it by name.
class Segment {
 public:
  static Segment open(const std::string &name) {
    shmkit_segment *raw = nullptr;
    detail::check(shmkit_segment_open(name.c_str(), &raw), "opening a segment");
    return Segment(raw);
  }
  static Segment open_or_create(const std::string &name, uint64_t size) {
    shmkit_segment *raw = nullptr;
    detail::check(shmkit_segment_open_or_create(name.c_str(), size, &raw), "opening a segment");
    return Segment(raw);
  }
  Mutex mutex(const std::string &name) const {
    shmkit_mutex *raw = nullptr;
    detail::check(shmkit_mutex_open(h_.get(), name.c_str(), &raw), "opening a mutex");
    return Mutex(raw);
  }
  Event event(const std::string &name) const {
    shmkit_event *raw = nullptr;
    detail::check(shmkit_event_open(h_.get(), name.c_str(), &raw), "opening an event");
    return Event(raw);
  }
  /// An existing frame ring, with its creator's geometry.
  FrameRing frame_ring(const std::string &name) const {
    shmkit_frame_ring *raw = nullptr;
    detail::check(shmkit_frame_ring_open(h_.get(), name.c_str(), &raw), "opening a frame ring");
    return FrameRing(raw);
  }
  shmkit_segment *get() const noexcept { return h_.get(); }

 private:
  explicit Segment(shmkit_segment *raw) : h_(raw) {}
  detail::Handle<shmkit_segment, detail::close_segment> h_;
};

}  // namespace shmkit

#endif  // SHMKIT_HPP
