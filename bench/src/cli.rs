//! The few options of the benchmark programs: `--name VALUE`, each with a
//! default, so `bench/run.sh` can shorten a run (`QUICK=1`).

use std::str::FromStr;

/// The value after `--name` on the command line, or `default`.
pub fn opt<T: FromStr>(name: &str, default: T) -> T {
    let flag = format!("--{name}");
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| *a == flag) {
        None => default,
        Some(i) => {
            let v = args
                .get(i + 1)
                .unwrap_or_else(|| panic!("{flag} needs a value"));
            v.parse()
                .unwrap_or_else(|_| panic!("{flag}: bad value {v:?}"))
        }
    }
}
