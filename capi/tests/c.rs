//! The C API from C and C++, compiled with the system's compilers against the library as a C
//! project finds it: `scripts/install-c` stages it (shared and static library, headers,
//! `shmkit.pc`, the CMake package) under `target/c-api-test/`, and every program is compiled
//! with `pkg-config --cflags --libs shmkit` (one statically, one through CMake's
//! `find_package`). Then the programs meet Rust and Python processes over shared memory: the
//! C camera's frames read zero-copy by the Rust and Python readers, the C controller reading
//! a Rust writer's frames and commanding a Rust mirror server, the C command server answering
//! the Rust and Python clients, the C++ wrapper's reader, and `api_test.c` (the API's
//! contract, checked from C). Also: the committed header is what cbindgen makes of the source.
//!
//! `SHMKIT_C_SANITIZE=address` compiles the C and C++ programs with AddressSanitizer (CI does
//! once). `SHMKIT_PYTHON` names a Python with shmkit installed (the README's test command
//! sets it); without it the Python readers are skipped, visibly (a failure under
//! `SHMKIT_REQUIRE_ALL=1`).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Where the test works: `target/c-api-test/<pid>/`, beside the built library.
struct Bench {
    /// `target/<profile>/`: the library and the Rust examples.
    build: PathBuf,
    work: PathBuf,
    prefix: PathBuf,
    sanitize: Option<String>,
}

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("capi/ is in the repository")
        .to_path_buf()
}

impl Bench {
    fn new() -> Bench {
        let exe = std::env::current_exe().expect("the test's own path");
        let build = exe
            .parent()
            .and_then(|deps| deps.parent())
            .expect("target/<profile>/deps")
            .to_path_buf();
        let work = build
            .parent()
            .expect("target/")
            .join("c-api-test")
            .join(std::process::id().to_string());
        let _ = std::fs::remove_dir_all(&work);
        std::fs::create_dir_all(&work).expect("the test's work directory");
        let prefix = work.join("prefix");
        let libraries = library_dir(&build);
        let status = Command::new("bash")
            .arg(repo().join("scripts/install-c"))
            .arg("--from")
            .arg(&libraries)
            .arg("--prefix")
            .arg(&prefix)
            .status()
            .expect("run scripts/install-c");
        assert!(status.success(), "scripts/install-c failed");
        let sanitize = std::env::var("SHMKIT_C_SANITIZE")
            .ok()
            .filter(|s| !s.is_empty());
        Bench {
            build,
            work,
            prefix,
            sanitize,
        }
    }

    fn pkg_config(&self, args: &[&str]) -> Vec<String> {
        let out = Command::new("pkg-config")
            .args(args)
            .arg("shmkit")
            .env("PKG_CONFIG_PATH", self.prefix.join("lib/pkgconfig"))
            .output()
            .expect("pkg-config (Debian's pkg-config package)");
        assert!(
            out.status.success(),
            "pkg-config {args:?} shmkit: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout)
            .expect("UTF-8")
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Compiles `source` (in `capi/c/`) with the C or C++ compiler, warnings as errors,
    /// linked as `pkg-config --libs shmkit` says (or statically).
    fn compile(&self, source: &str, statically: bool) -> PathBuf {
        let cpp = source.ends_with(".cpp");
        let out = self
            .work
            .join(source.replace('.', "_") + if statically { "_static" } else { "" });
        let mut cmd = Command::new(if cpp { "c++" } else { "cc" });
        cmd.arg(if cpp { "-std=c++17" } else { "-std=c11" })
            .args(["-Wall", "-Wextra", "-Werror", "-pthread", "-g", "-o"])
            .arg(&out)
            .arg(repo().join("capi/c").join(source))
            .args(self.pkg_config(&["--cflags"]));
        if let Some(sanitizer) = &self.sanitize {
            cmd.arg(format!("-fsanitize={sanitizer}"))
                .arg("-fno-omit-frame-pointer");
        }
        if statically {
            cmd.arg(self.prefix.join("lib/libshmkit_c.a")).args(
                self.pkg_config(&["--static", "--libs-only-l"])
                    .into_iter()
                    .skip(1),
            );
        } else {
            cmd.args(self.pkg_config(&["--libs"]));
        }
        let result = cmd.output().expect("the system's C/C++ compiler");
        assert!(
            result.status.success(),
            "compiling {source} failed:\n{}",
            String::from_utf8_lossy(&result.stderr)
        );
        out
    }

    /// A command running a compiled program against the staged library.
    fn program(&self, path: &Path) -> Command {
        let mut cmd = Command::new(path);
        cmd.env("LD_LIBRARY_PATH", self.prefix.join("lib"));
        // Rust's thread-locals and caches live until exit: not leaks of the C code.
        cmd.env("ASAN_OPTIONS", "detect_leaks=0:abort_on_error=1");
        cmd
    }

    fn rust_example(&self, name: &str) -> Command {
        let path = self.build.join("examples").join(name);
        assert!(
            path.exists(),
            "{} is missing: build the examples first (`cargo test` does)",
            path.display()
        );
        Command::new(path)
    }

    fn segment(&self, tag: &str) -> String {
        format!("shmkit-test-c-{tag}-{}", std::process::id())
    }
}

/// Where `libshmkit_c.so` and `.a` are: beside the test when `cargo build -p shmkit-c` made
/// them (`cargo test` builds only the rlib a test links), else built now in a target
/// directory of their own (the running `cargo test` may still hold this one's lock).
fn library_dir(build: &Path) -> PathBuf {
    let built =
        |dir: &Path| dir.join("libshmkit_c.so").exists() && dir.join("libshmkit_c.a").exists();
    if built(build) {
        return build.to_path_buf();
    }
    let target = build
        .parent()
        .expect("target/")
        .join("c-api-test")
        .join("library");
    println!(
        "building libshmkit_c in {} (cargo build -p shmkit-c first to skip this)",
        target.display()
    );
    let status = Command::new(env!("CARGO"))
        .args(["build", "-q", "-p", "shmkit-c", "--target-dir"])
        .arg(&target)
        .current_dir(repo())
        .status()
        .expect("run cargo");
    assert!(status.success(), "cargo build -p shmkit-c failed");
    let dir = target.join("debug");
    assert!(built(&dir), "no libshmkit_c in {}", dir.display());
    dir
}

impl Drop for Bench {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.work);
    }
}

fn python() -> Option<Command> {
    match std::env::var("SHMKIT_PYTHON") {
        Ok(p) if !p.is_empty() => Some(Command::new(p)),
        _ => {
            println!("    SKIPPED: the Python side (set SHMKIT_PYTHON to a Python with shmkit installed; ./scripts/test-all does)");
            assert!(
                std::env::var("SHMKIT_REQUIRE_ALL").as_deref() != Ok("1"),
                "SHMKIT_REQUIRE_ALL=1: the Python side of the C tests may not be skipped"
            );
            None
        }
    }
}

/// Runs `cmd` to its end (at most 60 s) and checks it succeeded; returns its output.
fn finish(mut cmd: Command, what: &str) -> String {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"));
    let out = wait_output(child, what);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn wait_output(mut child: Child, what: &str) -> Output {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if child.try_wait().expect("wait").is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "{what} did not finish within 60 s:\n{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().expect("output");
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn start(mut cmd: Command, what: &str) -> Child {
    cmd.stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("start {what}: {e}"))
}

fn committed_header_is_what_cbindgen_generates() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let config = cbindgen::Config::from_file(dir.join("cbindgen.toml")).expect("cbindgen.toml");
    let mut generated = Vec::new();
    cbindgen::Builder::new()
        .with_crate(dir)
        .with_config(config)
        .generate()
        .expect("cbindgen")
        .write(&mut generated);
    let committed = std::fs::read(dir.join("include/shmkit.h")).expect("include/shmkit.h");
    assert!(
        generated == committed,
        "capi/include/shmkit.h is stale: run scripts/gen-c-header"
    );
}

fn the_api_contract_holds_from_c(bench: &Bench) {
    let program = bench.compile("api_test.c", false);
    let out = finish(bench.program(&program), "api_test");
    assert!(out.contains("every check passed"), "{out}");
}

fn a_c_camera_is_read_zero_copy_by_rust_python_c_and_cpp_readers(bench: &Bench) {
    let camera = bench.compile("camera.c", false);
    let controller = bench.compile("controller.c", true);
    let stats = bench.compile("frame_stats.cpp", false);
    let name = bench.segment("camera");
    let mut cam = bench.program(&camera);
    cam.args([&name, "3000"]);
    let cam = start(cam, "the C camera");
    let mut rust = bench.rust_example("frames_reader");
    rust.args([&name, "300"]);
    let out = finish(rust, "the Rust frames_reader");
    assert!(out.contains("300 frames checked"), "{out}");
    let mut ctl = bench.program(&controller);
    ctl.args([&name, "300"]);
    let out = finish(ctl, "the C controller (linked statically)");
    assert!(out.contains("300 frames checked in place"), "{out}");
    let mut cpp = bench.program(&stats);
    cpp.args([&name, "300"]);
    let out = finish(cpp, "the C++ frame_stats");
    assert!(out.contains("300 frames checked in place"), "{out}");
    if let Some(mut py) = python() {
        py.arg(repo().join("python/examples/frames_reader.py"))
            .args([&name, "300"]);
        let out = finish(py, "the Python frames_reader");
        assert!(out.contains("300 frames checked"), "{out}");
    }
    let out = wait_output(cam, "the C camera");
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("camera: done"),
        "{out:?}"
    );
    let _ = shmkit::Segment::unlink(&name);
}

fn a_c_controller_reads_a_rust_writer_and_commands_a_rust_mirror_server(bench: &Bench) {
    let controller = bench.compile("controller.c", false);
    let name = bench.segment("controller");
    // The mirror server's host runs until its standard input closes.
    let mut host = bench
        .rust_example("dm_host")
        .arg(&name)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("start dm_host");
    let mut ready = String::new();
    BufReader::new(host.stdout.as_mut().expect("piped"))
        .read_line(&mut ready)
        .expect("dm_host's first line");
    assert!(ready.contains("is running"), "dm_host said {ready:?}");
    let mut writer = bench.rust_example("frames_writer");
    writer.args([&name, "3000"]);
    let writer = start(writer, "the Rust frames_writer");
    let mut ctl = bench.program(&controller);
    ctl.args([&name, "200", "Dm"]);
    let out = finish(ctl, "the C controller");
    assert!(
        out.contains("200 frames checked in place") && out.contains("200 mirror commands applied"),
        "{out}"
    );
    drop(host.stdin.take());
    let status = host.wait().expect("dm_host");
    assert!(status.success(), "dm_host: {status}");
    wait_output(writer, "the Rust frames_writer");
    let _ = shmkit::Segment::unlink(&name);
}

/// A Python client of the C adder: the pair of i64 in postcard's format (zigzag varints), as
/// the Rust `command_client` sends it, through `CommandRing.call` (raw bytes).
const PYTHON_ADDER_CLIENT: &str = r#"
import sys, shmkit
def varint(n):
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)
def zigzag(i):
    return varint((i << 1) ^ (i >> 63))
def unvarint(b):
    n = 0
    for shift, byte in enumerate(b):
        n |= (byte & 0x7F) << (7 * shift)
        if not byte & 0x80:
            return n
    raise ValueError("truncated varint")
name, calls = sys.argv[1], int(sys.argv[2])
ring = shmkit.Segment.open(name).command_ring("adder")
for i in range(calls):
    z = unvarint(ring.call(zigzag(i) + zigzag(-2 * i), timeout=5.0))
    total = (z >> 1) ^ -(z & 1)
    assert total == -i, (i, total)
print(f"python: {calls} calls answered correctly")
"#;

fn a_c_command_server_answers_rust_and_python_clients(bench: &Bench) {
    let server = bench.compile("adder_server.c", false);
    let name = bench.segment("adder");
    let with_python = python();
    let calls = 300;
    let total = if with_python.is_some() {
        2 * calls
    } else {
        calls
    };
    let mut srv = bench.program(&server);
    srv.args([name.clone(), total.to_string()]);
    let srv = start(srv, "the C adder_server");
    let mut rust = bench.rust_example("command_client");
    rust.args([&name, &calls.to_string()]);
    let out = finish(rust, "the Rust command_client");
    assert!(out.contains("calls answered correctly"), "{out}");
    if let Some(mut py) = with_python {
        py.arg("-c")
            .arg(PYTHON_ADDER_CLIENT)
            .args([&name, &calls.to_string()]);
        let out = finish(py, "the Python adder client");
        assert!(out.contains("calls answered correctly"), "{out}");
    }
    wait_output(srv, "the C adder_server");
    let _ = shmkit::Segment::unlink(&name);
}

fn a_cmake_project_finds_the_package(bench: &Bench) {
    if Command::new("cmake").arg("--version").output().is_err() {
        println!("    SKIPPED: cmake is not installed (./scripts/test-all installs it as root)");
        assert!(
            std::env::var("SHMKIT_REQUIRE_ALL").as_deref() != Ok("1"),
            "SHMKIT_REQUIRE_ALL=1: the CMake check may not be skipped"
        );
        return;
    }
    let project = bench.work.join("cmake-project");
    std::fs::create_dir_all(&project).expect("project directory");
    std::fs::write(
        project.join("CMakeLists.txt"),
        "cmake_minimum_required(VERSION 3.16)\nproject(uses_shmkit C)\n\
         find_package(shmkit 0.1 REQUIRED)\nadd_executable(version version.c)\n\
         target_link_libraries(version PRIVATE shmkit::shmkit_static)\n",
    )
    .expect("CMakeLists.txt");
    std::fs::write(
        project.join("version.c"),
        "#include <shmkit.h>\n#include <stdio.h>\n\
         int main(void) { printf(\"shmkit %s\\n\", shmkit_version()); return 0; }\n",
    )
    .expect("version.c");
    let build = project.join("build");
    let configure = Command::new("cmake")
        .arg("-S")
        .arg(&project)
        .arg("-B")
        .arg(&build)
        .arg(format!("-DCMAKE_PREFIX_PATH={}", bench.prefix.display()))
        .output()
        .expect("cmake");
    assert!(
        configure.status.success(),
        "cmake configure: {}",
        String::from_utf8_lossy(&configure.stderr)
    );
    let built = Command::new("cmake")
        .arg("--build")
        .arg(&build)
        .output()
        .expect("cmake --build");
    assert!(
        built.status.success(),
        "cmake --build: {}{}",
        String::from_utf8_lossy(&built.stdout),
        String::from_utf8_lossy(&built.stderr)
    );
    let out = finish(
        Command::new(build.join("version")),
        "the CMake-built program",
    );
    assert_eq!(out.trim(), format!("shmkit {}", env!("CARGO_PKG_VERSION")));
}

fn main() {
    let bench = Bench::new();
    let tests: [(&str, &dyn Fn()); 6] = [
        (
            "committed_header_is_what_cbindgen_generates",
            &committed_header_is_what_cbindgen_generates,
        ),
        ("the_api_contract_holds_from_c", &|| {
            the_api_contract_holds_from_c(&bench)
        }),
        (
            "a_c_camera_is_read_zero_copy_by_rust_python_c_and_cpp_readers",
            &|| a_c_camera_is_read_zero_copy_by_rust_python_c_and_cpp_readers(&bench),
        ),
        (
            "a_c_controller_reads_a_rust_writer_and_commands_a_rust_mirror_server",
            &|| a_c_controller_reads_a_rust_writer_and_commands_a_rust_mirror_server(&bench),
        ),
        (
            "a_c_command_server_answers_rust_and_python_clients",
            &|| a_c_command_server_answers_rust_and_python_clients(&bench),
        ),
        ("a_cmake_project_finds_the_package", &|| {
            a_cmake_project_finds_the_package(&bench)
        }),
    ];
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    if let Some(sanitizer) = &bench.sanitize {
        println!("C and C++ programs compiled with -fsanitize={sanitizer}");
    }
    for (name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        println!("test {name} ...");
        test();
        println!("test {name} ... ok");
    }
}
