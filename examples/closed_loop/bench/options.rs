//! The run's parameters, shared by the testbed process and both experiments.

use serde::{Deserialize, Serialize};
use shmkit::devices::sim::{SimCameraConfig, SimDmConfig};
use shmkit::WaitStrategy;

/// The run's parameters (sent to both experiments).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Seconds of closed loop after calibration.
    pub duration_s: f64,
    /// Camera frames per second.
    pub rate_hz: f64,
    /// Sub-apertures per side.
    pub subapertures: u32,
    /// Pixels per sub-aperture side.
    pub pixels: u32,
    /// Mirror actuators per side.
    pub actuators: u32,
    /// Integrator gain.
    pub gain: f32,
    /// How the experiments wait for frames: "block", "spin" or "spin-then-block".
    pub wait: String,
    /// Testbed segment name.
    pub segment: String,
    /// Pin the controller to the last CPU and everything else to CPU 0 (on 2+ CPUs). Off by
    /// default: on the 2-vCPU VM this was measured on, a controller alone on a CPU that halts
    /// between frames wakes later (p99 59–79 µs) than one the scheduler places (p99 ~49 µs).
    pub pin: bool,
    /// The controller's thread in real-time mode (locked memory, `SCHED_FIFO` 50) when the
    /// user has the right; a message saying what is missing otherwise.
    pub realtime: bool,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration_s: 10.0,
            rate_hz: 2000.0,
            subapertures: 16,
            pixels: 8,
            actuators: 12,
            gain: 0.4,
            wait: "block".into(),
            segment: format!("shmkit-closed-loop-{}", std::process::id()),
            pin: false,
            realtime: false,
        }
    }
}

impl Options {
    pub fn strategy(&self) -> WaitStrategy {
        match self.wait.as_str() {
            "spin" => WaitStrategy::Spin,
            "spin-then-block" => WaitStrategy::SpinThenBlock,
            _ => WaitStrategy::Block,
        }
    }

    pub fn camera(&self) -> SimCameraConfig {
        SimCameraConfig {
            subapertures: self.subapertures,
            pixels: self.pixels,
            rate_hz: self.rate_hz,
            slots: 16,
            gain: 1.0,
            dm: Some("Dm".into()),
            dm_actuators: self.actuators,
        }
    }

    pub fn dm(&self) -> SimDmConfig {
        SimDmConfig {
            actuators: self.actuators,
            stroke: 1.0,
            fail_open: None,
            hard_limit: None,
        }
    }
}
