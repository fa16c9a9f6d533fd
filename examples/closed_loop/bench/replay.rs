//! The controller against a recorded camera: what a recorded run keeps beside its frames
//! (its options, the reconstructor, where the closed loop began), and the check that a
//! replayed run commands the mirror exactly as the recorded one did.
//!
//! A run with `--record DIR` writes `closed_loop.json` and `reconstructor.fits` into the
//! session at its end. `--replay DIR` starts the bench without a camera server, republishes
//! the camera's frames from the closed loop's first frame into `dev/Camera/frames` at their
//! recorded pace, and the controller loads the reconstructor instead of calibrating. It
//! commands the mirror from the frames the recorded run commanded from (see
//! [`Comparison`]); frames, reconstructor and integrator are then the recorded run's, so every
//! command must be the recorded one, bit for bit.

use super::options::Options;
use serde::{Deserialize, Serialize};
use shmkit::rings::ElemType;
use shmkit_record::fits::{data, header, Header, Value};
use shmkit_record::read::RecordedFile;
use shmkit_record::Manifest;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// The camera's frame ring, as the camera server names it.
pub const CAMERA_FRAMES: &str = "dev/Camera/frames";
/// The mirror's shape ring.
pub const MIRROR_SHAPES: &str = "dev/Dm/shape";
/// The recorded run's parameters and where its closed loop began.
const CALIBRATION: &str = "closed_loop.json";
/// The reconstructor, a FITS image astropy reads (`NAXIS1` slopes, `NAXIS2` actuators).
const RECONSTRUCTOR: &str = "reconstructor.fits";

/// What a recorded run keeps for its replay.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Calibration {
    /// The recorded run's options (geometry, turbulence, gains).
    pub options: Options,
    /// Publish time (`CLOCK_MONOTONIC`, ns) of the closed loop's first frame.
    pub closed_from_ns: u64,
    /// The camera's counter (user word 0) of the last frame the closed loop read: a replay
    /// ends its loop there (the camera ran on after it, into a mirror no longer commanded).
    pub closed_to_counter: u64,
    /// Slopes (the reconstructor's columns).
    pub slopes: usize,
    /// Active actuators (its rows).
    pub actuators: usize,
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

/// Writes `calibration` and the reconstructor `rec` (`actuators × slopes`, row-major) into
/// the session directory `dir`.
pub fn save(dir: &Path, calibration: &Calibration, rec: &[f32]) -> Result<(), Failure> {
    if rec.len() != calibration.slopes * calibration.actuators {
        return Err(format!(
            "a reconstructor of {} values is not {} x {}",
            rec.len(),
            calibration.actuators,
            calibration.slopes
        )
        .into());
    }
    let mut h = Header::new();
    h.card("SIMPLE", Value::Logical(true), "conforms to FITS")
        .card("BITPIX", Value::Int(-32), "IEEE single")
        .card("NAXIS", Value::Int(2), "")
        .card("NAXIS1", Value::Int(calibration.slopes as i128), "slopes")
        .card(
            "NAXIS2",
            Value::Int(calibration.actuators as i128),
            "actuators",
        )
        .card(
            "EXTNAME",
            Value::Text("RECONSTRUCTOR".into()),
            "commands = R x slopes",
        );
    let mut bytes = h.to_bytes();
    let raw: Vec<u8> = rec.iter().flat_map(|v| v.to_ne_bytes()).collect();
    data::encode(ElemType::F32, &raw, &mut bytes);
    bytes.resize(header::blocks_for(bytes.len()), 0);
    std::fs::write(dir.join(RECONSTRUCTOR), bytes)?;
    std::fs::write(
        dir.join(CALIBRATION),
        serde_json::to_vec_pretty(calibration)?,
    )?;
    Ok(())
}

/// Reads the [`Calibration`] [`save`] wrote (without the reconstructor).
pub fn calibration(dir: &Path) -> Result<Calibration, Failure> {
    let path = dir.join(CALIBRATION);
    Ok(serde_json::from_slice(&std::fs::read(&path).map_err(|e| {
        format!(
            "{}: {e} (a session recorded by closed_loop --record has it)",
            path.display()
        )
    })?)
    .map_err(|e| format!("{}: {e}", path.display()))?)
}

/// Reads what [`save`] wrote.
pub fn load(dir: &Path) -> Result<(Calibration, Vec<f32>), Failure> {
    let calibration = self::calibration(dir)?;
    let path = dir.join(RECONSTRUCTOR);
    let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    let corrupt = |what: &str| format!("{}: {what}", path.display());
    let (cards, len) = header::parse(&bytes).ok_or_else(|| corrupt("no FITS header"))?;
    let card = |key: &str| {
        cards
            .iter()
            .find(|(k, _)| k == key)
            .and_then(|(_, v)| v.parse::<usize>().ok())
    };
    if (card("NAXIS1"), card("NAXIS2")) != (Some(calibration.slopes), Some(calibration.actuators)) {
        return Err(corrupt("its size is not the calibration's").into());
    }
    let n = calibration.slopes * calibration.actuators;
    let stored = bytes
        .get(len..len + 4 * n)
        .ok_or_else(|| corrupt("the data is shorter than its header says"))?;
    let mut raw = Vec::with_capacity(4 * n);
    data::decode(ElemType::F32, stored, &mut raw);
    let rec = raw
        .chunks_exact(4)
        .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    Ok((calibration, rec))
}

/// A mirror command's fingerprint: equal commands, bit for bit, have equal fingerprints.
pub fn fingerprint(values: &[f32]) -> u64 {
    // Over the bits, without copying them out: it runs once per command in the loop.
    values.iter().fold(values.len() as u64, |h, v| {
        (h ^ u64::from(v.to_bits()))
            .wrapping_mul(0xFF51_AFD7_ED55_8CCD)
            .rotate_left(29)
    })
}

/// The recorded run's commands, to compare a replayed run's against.
pub struct RecordedCommands {
    /// Camera frame counter (user word 0) → the frame's id in the recorded ring.
    camera_id: HashMap<u64, u64>,
    /// Camera frame id a command was computed from (the mirror's tag) → its fingerprint.
    commands: BTreeMap<u64, u64>,
    /// Tag ranges (exclusive) where the recording dropped mirror frames: whether the recorded
    /// run commanded a frame in them is unknown.
    gaps: Vec<(u64, u64)>,
}

impl RecordedCommands {
    /// Reads the camera's and the mirror's rings of the session in `dir`.
    pub fn read(dir: &Path) -> Result<RecordedCommands, Failure> {
        let manifest = Manifest::read(dir)?;
        let files = |ring: &str| -> Result<Vec<RecordedFile>, Failure> {
            let record = manifest
                .rings
                .iter()
                .find(|r| r.ring == ring)
                .ok_or_else(|| format!("{}: the session has no ring {ring}", dir.display()))?;
            Ok(record
                .files
                .iter()
                .map(|f| RecordedFile::open(&dir.join(&f.file)))
                .collect::<Result<_, _>>()?)
        };
        let mut camera_id = HashMap::new();
        for file in files(CAMERA_FRAMES)? {
            for row in file.rows() {
                camera_id.insert(row.user[0], row.id);
            }
        }
        let (mut commands, mut gaps) = (BTreeMap::new(), Vec::new());
        let mut shape = Vec::new();
        let mut last_tag = 0;
        for file in files(MIRROR_SHAPES)? {
            for (i, row) in file.rows().iter().enumerate() {
                if row.dropped > 0 {
                    gaps.push((last_tag, row.user[0].max(last_tag + 1)));
                }
                // Tag 0: calibration and flat commands, not the loop's.
                if row.user[0] == 0 {
                    continue;
                }
                last_tag = row.user[0];
                file.frame(i, &mut shape)?;
                let values: Vec<f32> = shape
                    .chunks_exact(4)
                    .map(|b| f32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
                    .collect();
                commands.insert(row.user[0], fingerprint(&values));
            }
        }
        Ok(RecordedCommands {
            camera_id,
            commands,
            gaps,
        })
    }
}

/// How a replayed run's commands compared with the recorded run's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReplayCheck {
    /// Commands compared (while the recording said which frames its run commanded).
    pub compared: u64,
    /// Of those, identical bit for bit.
    pub identical: u64,
    /// The recorded frame id from which the recording no longer says which frames its run
    /// commanded (a frame it dropped), if it came.
    pub unknown_from: Option<u64>,
}

/// What the recorded run did with a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recorded {
    /// Commanded the mirror from it.
    Commanded,
    /// Used it for telemetry only (a newer frame was already published).
    TelemetryOnly,
    /// The recording cannot say (it dropped that frame, a command, or an earlier one).
    Unknown,
}

/// A replayed run's commands checked, frame by frame, against [`RecordedCommands`].
///
/// The replayed controller commands the frames the recorded one commanded, and only those
/// (a replayed frame's timing is not the recorded one's, so its own choice could differ,
/// and a leaky integrator never forgets a difference): then each command must be the
/// recorded one.
pub struct Comparison {
    recorded: RecordedCommands,
    /// The last recorded frame id replayed.
    last: Option<u64>,
    /// The outcome so far.
    pub check: ReplayCheck,
}

impl Comparison {
    /// Starts comparing against `recorded`.
    pub fn new(recorded: RecordedCommands) -> Comparison {
        Comparison {
            recorded,
            last: None,
            check: ReplayCheck::default(),
        }
    }

    /// What the recorded run did with the frame the camera counted `counter` (read in
    /// order; once [`Recorded::Unknown`], always).
    pub fn recorded(&mut self, counter: u64) -> Recorded {
        if self.check.unknown_from.is_some() {
            return Recorded::Unknown;
        }
        let r = &self.recorded;
        let Some(&id) = r.camera_id.get(&counter) else {
            self.check.unknown_from = Some(self.last.map_or(0, |l| l + 1));
            return Recorded::Unknown;
        };
        // A frame commanded between the last one replayed and this one is one the replay
        // lacks (dropped by the recording); a frame in a gap of the mirror's recording is one
        // whose command may have been lost.
        let skipped_command = self
            .last
            .is_some_and(|last| r.commands.range(last + 1..id).next().is_some());
        let in_gap = r.gaps.iter().any(|&(a, b)| a < id && id < b);
        self.last = Some(id);
        if skipped_command || in_gap {
            self.check.unknown_from = Some(id);
            return Recorded::Unknown;
        }
        if r.commands.contains_key(&id) {
            Recorded::Commanded
        } else {
            Recorded::TelemetryOnly
        }
    }

    /// The replayed run commanded `values` from the frame the camera counted `counter`,
    /// which the recorded run also commanded from. (Once the recording cannot say what its
    /// run did, the integrators may differ: nothing more is compared.)
    pub fn command(&mut self, counter: u64, values: &[f32]) {
        if self.check.unknown_from.is_some() {
            return;
        }
        let recorded = self
            .recorded
            .camera_id
            .get(&counter)
            .and_then(|id| self.recorded.commands.get(id));
        if let Some(&recorded) = recorded {
            self.check.compared += 1;
            if fingerprint(values) == recorded {
                self.check.identical += 1;
            }
        }
    }
}
