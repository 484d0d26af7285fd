//! The differential SQL fuzzer's short fixed-seed run (issue 15; how it
//! works: `docs/fuzzing.md`): a few hundred generated statements on real
//! SQLite and through the shim, failing on any difference that is not a
//! known one (`plex_pg_tests::fuzz::known`), and the fuzzer's findings
//! (`tests/sql/fuzz_found.test`) checked to still show only their gaps.
//! The long run from any seed: `bench/fuzz-sql.sh`.

use plex_pg_tests::fuzz;
use plex_pg_tests::workspace_root;

/// The run CI makes: fixed, so a failure is reproducible with
/// `bench/fuzz-sql.sh 1 1000`.
const SEED: u64 = 1;
const UNITS: usize = 1000;

#[test]
fn fixed_seed_run_finds_no_new_difference() {
    let report = fuzz::run(SEED, UNITS);
    eprint!("{}", report.summary());
    let new = report.new_differences();
    assert!(
        new.is_empty(),
        "{} new difference(s) between SQLite and the shim (replay: bench/fuzz-sql.sh {SEED} {UNITS}; \
         turn each into a case of tests/sql/fuzz_found.test and a class of fuzz::known, \
         docs/fuzzing.md):\n{}",
        new.len(),
        report.summary()
    );
    // The run must mostly agree: a generator gone wrong (every statement
    // an error on both sides, say) would otherwise pass unnoticed.
    assert!(
        report.agreed * 10 >= report.statements * 8,
        "only {} of {} statements agreed",
        report.agreed,
        report.statements
    );
}

#[test]
fn found_cases_show_only_their_gaps() {
    let check =
        fuzz::compare::case_differences(&workspace_root().join("tests/sql/fuzz_found.test"));
    assert!(
        check.differences.is_empty(),
        "fuzz_found.test differs outside its gaps:\n{}",
        check.differences.join("\n")
    );
    assert!(
        check.stale_gaps.is_empty(),
        "fixed in the shim: remove these statements' `-- gap:` in tests/sql/fuzz_found.test \
         and their class in tests/src/fuzz/known.rs:\n{}",
        check.stale_gaps.join("\n")
    );
}

#[test]
fn a_seed_always_generates_the_same_statements() {
    let text = |seed| fuzz::case_file(seed, 200);
    assert_eq!(text(SEED), text(SEED));
    assert_ne!(text(SEED), text(SEED + 1));
}
