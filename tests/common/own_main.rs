//! The runner of test binaries that have their own `main` (they dispatch shmkit children at
//! its top, which libtest's harness would not let them do): runs each named test, or those
//! whose name contains a command-line filter, catching panics, and prints libtest-like lines
//! ending with "N passed, N failed". Exits 1 if any failed.

/// Runs `tests` as described above.
pub fn run_tests(tests: &[(&str, fn())]) {
    let filter: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let (mut passed, mut failed) = (0, 0);
    for &(name, test) in tests {
        if !filter.is_empty() && !filter.iter().any(|f| name.contains(f.as_str())) {
            continue;
        }
        match std::panic::catch_unwind(test) {
            Ok(()) => {
                println!("test {name} ... ok");
                passed += 1;
            }
            Err(_) => {
                println!("test {name} ... FAILED");
                failed += 1;
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    if failed > 0 {
        std::process::exit(1);
    }
}
