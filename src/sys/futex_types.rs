//! The outcome of a futex wait, shared by the real futex and its loom model.

/// How a futex wait ended. Every outcome except `TimedOut` may be spurious: callers re-check
/// the word.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FutexWait {
    /// Woken by a wake call (or spuriously).
    Woken,
    /// The word did not hold the expected value when the kernel looked.
    Changed,
    /// The deadline passed.
    TimedOut,
    /// A signal interrupted the wait.
    Interrupted,
}
