//! The run's parameters, shared by the testbed process and both experiments.

use serde::{Deserialize, Serialize};
use shmkit::WaitStrategy;
use shmkit_sim::ao::{AoConfig, WindLayer};
use shmkit_sim::{SimCameraConfig, SimDmConfig};
use std::path::PathBuf;

/// `SCHED_FIFO` priorities of the real-time mode: the controller above the mirror it waits
/// for, the mirror above the camera (a command must not wait for a frame's rendering).
pub const CONTROLLER_PRIORITY: i32 = 50;
/// The mirror server's.
pub const MIRROR_PRIORITY: i32 = 45;
/// The camera server's.
pub const CAMERA_PRIORITY: i32 = 40;

/// The run's parameters (sent to both experiments).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Options {
    /// Seconds of closed loop after calibration.
    pub duration_s: f64,
    /// Seconds of open loop (turbulence on, mirror flat) before closing.
    pub open_loop_s: f64,
    /// Camera frames per second.
    pub rate_hz: f64,
    /// Sub-apertures per side (the mirror has one more actuator per side, on the corners).
    pub subapertures: u32,
    /// Pixels per sub-aperture side.
    pub pixels: u32,
    /// Integrator gain.
    pub gain: f32,
    /// Integrator leak: `c ← leak · c − gain · R s`.
    pub leak: f32,
    /// The physics: pupil, turbulence, sensor, mirror coupling.
    pub ao: AoConfig,
    /// Mirror stroke, µm of surface.
    pub stroke: f32,
    /// Push-pull amplitude of the calibration, µm.
    pub poke_um: f32,
    /// Poke-test steps (latency in frames).
    pub poke_steps: u32,
    /// How the experiments wait for frames: "block", "spin" or "spin-then-block".
    pub wait: String,
    /// Testbed segment name.
    pub segment: String,
    /// Pin the controller to the last CPU and everything else to CPU 0 (on 2+ CPUs). On by
    /// default: the controller then never shares a CPU with the camera's rendering, and the
    /// servers it waits for share theirs only with work that yields to them (see
    /// `statistics.rs`). Measured on the 2-vCPU VM of the closing note.
    pub pin: bool,
    /// The CPU the controller moves to when [`run`](super::run) pins: this one if set, else
    /// the last CPU it may use; chosen before the experiments start and inherit the servers'
    /// pin (the first other CPU).
    #[serde(default)]
    pub controller_cpu: Option<usize>,
    /// The controller's thread in real-time mode (locked memory, `SCHED_FIFO` 50) when the
    /// user has the right; a message saying what is missing otherwise.
    pub realtime: bool,
    /// Where the plotted report goes (`None`: no plots, only the returned numbers).
    pub report_dir: Option<PathBuf>,
    /// Record the camera's and the mirror's rings into this session directory while the
    /// loop runs (`shmkit-record`, at idle priority, beside the device servers).
    pub record: Option<PathBuf>,
    /// Run the controller against this recorded session's camera (see `replay.rs`).
    #[serde(default)]
    pub replay: Option<PathBuf>,
    /// Trace the loop (the controller and the device servers) into the segment's trace
    /// buffer [`TRACE_BUFFER`](super::latency::TRACE_BUFFER), which `shmkit trace` follows.
    #[serde(default = "yes")]
    pub tracing: bool,
    /// Write the traced loop's last seconds here (Chrome trace-event JSON) at the end.
    #[serde(default)]
    pub trace: Option<PathBuf>,
    /// The wavelength Strehl is reported at, nm (H band).
    pub science_nm: f64,
    /// Serve the live view in the browser (`shmkit-viewer`, on loopback with a token, at
    /// nice 10 beside the device servers) while the bench runs, printing its URL.
    #[serde(default)]
    pub view: bool,
}

fn yes() -> bool {
    true
}

impl Default for Options {
    fn default() -> Self {
        Options {
            duration_s: 10.0,
            open_loop_s: 0.5,
            rate_hz: 2000.0,
            subapertures: 24,
            pixels: 8,
            gain: 0.5,
            leak: 0.995,
            ao: AoConfig::default(),
            stroke: 5.0,
            poke_um: 0.25,
            poke_steps: 20,
            wait: "block".into(),
            segment: format!("shmkit-closed-loop-{}", std::process::id()),
            pin: true,
            controller_cpu: None,
            realtime: false,
            report_dir: None,
            record: None,
            replay: None,
            tracing: true,
            trace: None,
            science_nm: 1650.0,
            view: false,
        }
    }
}

impl Options {
    /// The small configuration of the test suite: 8 × 8 sub-apertures on a 2 m pupil (the
    /// same r0 / d ratio as the default bench's 8 m and 24 × 24), at 1 kHz.
    #[allow(dead_code)] // the test suite's, not the example's
    pub fn small() -> Options {
        Options {
            duration_s: 2.0,
            open_loop_s: 0.3,
            rate_hz: 1000.0,
            subapertures: 8,
            poke_steps: 6,
            ao: AoConfig {
                diameter: 8.0 / 3.0,
                outer_scale: 10.0,
                layers: vec![WindLayer {
                    fraction: 1.0,
                    speed: 5.0,
                    direction_deg: 30.0,
                }],
                ..AoConfig::default()
            },
            ..Options::default()
        }
    }

    /// Bytes of the results dictionary: the controller's per-frame telemetry (five f32
    /// series and the residual's (t, nm) pairs) with room to spare, and two camera frames.
    pub fn results_bytes(&self) -> u64 {
        let frames = self.rate_hz * (self.duration_s + self.open_loop_s + 2.0);
        let side = u64::from(self.subapertures * self.pixels);
        (frames * 48.0) as u64 + 4 * side * side + (1 << 20)
    }

    /// The dictionary in `segment` where the controller and the statistics experiment leave
    /// their reports for the coordinator.
    pub fn results(
        &self,
        segment: &shmkit::Segment,
    ) -> Result<shmkit::SharedDict, shmkit::SegmentError> {
        shmkit::SegmentObjects::open_or_create(
            segment,
            "closed-loop/results",
            &shmkit::shared::DictSpec {
                max_entries: 4,
                data_bytes: self.results_bytes(),
            },
        )
    }

    /// The testbed segment's size: the results dictionary (twice its record space) and the
    /// rest of the bench.
    pub fn segment_bytes(&self) -> u64 {
        2 * self.results_bytes() + (64 << 20)
    }

    /// Actuators per side.
    pub fn actuators(&self) -> u32 {
        self.subapertures + 1
    }

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
            // 32 ms of frames at 2 kHz: a controller descheduled for a few ms (seen: 8.8 ms on a
            // loaded 2-core VM) catches up instead of losing frames to an overrun.
            slots: 64,
            gain: 1.0,
            dm: Some("Dm".into()),
            dm_actuators: self.actuators(),
            ao: Some(self.ao.clone()),
            realtime: self.realtime.then_some(CAMERA_PRIORITY),
        }
    }

    pub fn dm(&self) -> SimDmConfig {
        SimDmConfig {
            actuators: self.actuators(),
            stroke: self.stroke,
            fail_open: None,
            hard_limit: None,
            realtime: self.realtime.then_some(MIRROR_PRIORITY),
        }
    }
}
