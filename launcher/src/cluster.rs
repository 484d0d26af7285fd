//! A throwaway PostgreSQL cluster: `initdb` and `pg_ctl` in a fresh
//! temporary directory, listening on a Unix socket in that directory and on
//! a free loopback TCP port.
//!
//! Used by the demo (`plex-pg-demo`) when no server is configured, and by the
//! tests, which can also make a streaming standby of a cluster
//! ([`Cluster::standby_of`]) and promote it (failover tests). `initdb` and `postgres` refuse to run as root, so when we are root
//! the cluster is owned by, and run as, the `postgres` user (`runuser`).
//! The `plex-pg-launcher` binary never uses it: it is in the library only
//! for the tests, the benchmarks and the demo.
//!
//! Authentication: the socket trusts every local user; TCP asks for a
//! password (SCRAM), so a wrong password can be tested for real. The role
//! [`Cluster::USER`] (password [`Cluster::PASSWORD`]) owns the database
//! [`Cluster::DATABASE`].

use std::fs;
use std::io;
use std::net::TcpListener;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running cluster; stopped and deleted when dropped.
pub struct Cluster {
    dir: PathBuf,
    bin: PathBuf,
    run_as: Option<String>,
    port: u16,
    stopped: bool,
}

impl Cluster {
    pub const USER: &'static str = "plex";
    pub const PASSWORD: &'static str = "plex-pg-test";
    pub const DATABASE: &'static str = "plex";

    /// Start a new cluster. Takes a few seconds (initdb).
    pub fn start() -> io::Result<Cluster> {
        let mut cluster = Cluster::empty()?;
        let pwfile = cluster.dir.join("pwfile");
        fs::write(&pwfile, "postgres\n")?;
        cluster.chown(&pwfile)?;
        let data = cluster.data_dir();
        cluster.run(
            "initdb",
            &[
                "-D",
                path_str(&data)?,
                "-U",
                "postgres",
                "--pwfile",
                path_str(&pwfile)?,
                "-A",
                "trust",
                "--auth-host=scram-sha-256",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
        )?;
        fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\nlocal replication all trust\nhost all all 127.0.0.1/32 scram-sha-256\nhost all all ::1/128 scram-sha-256\n",
        )?;
        cluster.start_server()?;
        cluster.psql_as_postgres(&format!(
            "CREATE ROLE {} LOGIN SUPERUSER PASSWORD '{}'",
            Self::USER,
            Self::PASSWORD
        ))?;
        cluster.psql_as_postgres(&format!(
            "CREATE DATABASE {} OWNER {}",
            Self::DATABASE,
            Self::USER
        ))?;
        Ok(cluster)
    }

    /// A streaming standby of `primary` (`pg_basebackup -R` over its
    /// socket), started on a port of its own: read-only until
    /// [`Cluster::promote`].
    pub fn standby_of(primary: &Cluster) -> io::Result<Cluster> {
        let mut standby = Cluster::empty()?;
        let data = standby.data_dir();
        let port = primary.port.to_string();
        standby.run(
            "pg_basebackup",
            &[
                "-D",
                path_str(&data)?,
                "-R",
                "-X",
                "stream",
                "-h",
                path_str(&primary.dir)?,
                "-p",
                &port,
                "-U",
                "postgres",
            ],
        )?;
        standby.start_server()?;
        Ok(standby)
    }

    /// Promote a standby to primary (`pg_ctl promote`, waiting for it).
    pub fn promote(&self) -> io::Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &["-D", path_str(&data)?, "-w", "-t", "60", "promote"],
        )
    }

    /// A fresh directory (owned by the `postgres` user when we are root)
    /// and a free port; no server yet.
    fn empty() -> io::Result<Cluster> {
        let bin = find_pg_bin()?;
        let base = std::env::var_os("TMPDIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| "/tmp".into());
        let dir = base.join(format!(
            "plex-pg-cluster-{}-{}",
            std::process::id(),
            nanos()
        ));
        fs::create_dir_all(&dir)?;
        let run_as = if nix::unistd::geteuid().is_root() {
            Some("postgres".to_string())
        } else {
            None
        };
        let cluster = Cluster {
            dir,
            bin,
            run_as,
            port: free_port()?,
            stopped: true,
        };
        if let Some(user) = &cluster.run_as {
            let u = nix::unistd::User::from_name(user)
                .map_err(io::Error::other)?
                .ok_or_else(|| io::Error::other(format!("running as root, but there is no `{user}` user to run PostgreSQL as (install Debian's postgresql package)")))?;
            nix::unistd::chown(&cluster.dir, Some(u.uid), Some(u.gid)).map_err(io::Error::other)?;
        }
        Ok(cluster)
    }

    fn data_dir(&self) -> PathBuf {
        self.dir.join("data")
    }

    /// The directory holding the server's Unix socket (`.s.PGSQL.<port>`).
    pub fn socket_dir(&self) -> &Path {
        &self.dir
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's log file.
    pub fn log_file(&self) -> PathBuf {
        self.dir.join("server.log")
    }

    /// `PLEX_PG_*` variables that point the shim at this cluster over its
    /// Unix socket.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PLEX_PG_HOST".into(), self.dir.display().to_string()),
            ("PLEX_PG_PORT".into(), self.port.to_string()),
            ("PLEX_PG_DATABASE".into(), Self::DATABASE.into()),
            ("PLEX_PG_USER".into(), Self::USER.into()),
            ("PLEX_PG_PASSWORD".into(), Self::PASSWORD.into()),
        ]
    }

    fn start_server(&mut self) -> io::Result<()> {
        let opts = format!(
            "-k {} -p {} -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=400 -c shared_buffers=64MB",
            self.dir.display(),
            self.port
        );
        let data = self.data_dir();
        let log = self.log_file();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-l",
                path_str(&log)?,
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        )?;
        self.stopped = false;
        Ok(())
    }

    /// Stop the server (fast shutdown: sessions are disconnected).
    pub fn stop_server(&mut self) -> io::Result<()> {
        let data = self.data_dir();
        self.run(
            "pg_ctl",
            &[
                "-D",
                path_str(&data)?,
                "-m",
                "fast",
                "-w",
                "-t",
                "60",
                "stop",
            ],
        )?;
        self.stopped = true;
        Ok(())
    }

    /// Restart the server: every open session is cut, as when an
    /// administrator restarts PostgreSQL.
    pub fn restart(&mut self) -> io::Result<()> {
        self.stop_server()?;
        self.start_server()
    }

    /// Serve TLS with `cert` and `key` (PEM; copied into the cluster and
    /// given to its server's user), clients' certificates checked against
    /// `client_ca` when given; `hba` replaces `pg_hba.conf`; every
    /// connection is logged (with its TLS protocol). Restarts the server.
    pub fn serve_tls(
        &mut self,
        cert: &Path,
        key: &Path,
        client_ca: Option<&Path>,
        hba: &str,
    ) -> io::Result<()> {
        let data = self.data_dir();
        let mut conf = String::from("\nssl = on\nlog_connections = on\n");
        for (name, from, setting) in [
            ("server.crt", Some(cert), "ssl_cert_file"),
            ("server.key", Some(key), "ssl_key_file"),
            ("client_ca.crt", client_ca, "ssl_ca_file"),
        ] {
            let Some(from) = from else { continue };
            let to = data.join(name);
            fs::copy(from, &to)?;
            fs::set_permissions(&to, fs::Permissions::from_mode(0o600))?;
            self.chown(&to)?;
            conf.push_str(&format!("{setting} = '{name}'\n"));
        }
        let mut file = fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))?;
        io::Write::write_all(&mut file, conf.as_bytes())?;
        fs::write(data.join("pg_hba.conf"), hba)?;
        self.restart()
    }

    /// Run SQL with `psql` as the `plex` role over the socket; returns stdout
    /// (unaligned, tuples only).
    pub fn psql(&self, sql: &str) -> io::Result<String> {
        self.psql_inner(Self::USER, Self::DATABASE, sql)
    }

    fn psql_as_postgres(&self, sql: &str) -> io::Result<String> {
        self.psql_inner("postgres", "postgres", sql)
    }

    fn psql_inner(&self, user: &str, db: &str, sql: &str) -> io::Result<String> {
        psql(&self.bin, &self.dir, self.port, user, db, sql)
    }

    fn run(&self, tool: &str, args: &[&str]) -> io::Result<()> {
        let exe = self.bin.join(tool);
        let mut cmd = match &self.run_as {
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(&exe);
                c
            }
            None => Command::new(&exe),
        };
        // pg_ctl's server must not hold our stdout/stderr open (a test
        // harness waiting for EOF would hang), and must not inherit our cwd.
        let out = cmd
            .args(args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .output()?;
        check(&format!("{tool} {}", args.join(" ")), &out)
    }

    fn chown(&self, path: &Path) -> io::Result<()> {
        if let Some(user) = &self.run_as {
            if let Ok(Some(u)) = nix::unistd::User::from_name(user) {
                nix::unistd::chown(path, Some(u.uid), Some(u.gid)).map_err(io::Error::other)?;
            }
        }
        Ok(())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        if !self.stopped {
            let data = self.data_dir();
            if let Ok(d) = path_str(&data) {
                let _ = self.run(
                    "pg_ctl",
                    &["-D", d, "-m", "immediate", "-w", "-t", "30", "stop"],
                );
            }
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Run SQL with `psql` (from `bin`) over the socket in `socket_dir`;
/// returns stdout (unaligned, tuples only, `|` between columns).
pub fn psql(
    bin: &Path,
    socket_dir: &Path,
    port: u16,
    user: &str,
    db: &str,
    sql: &str,
) -> io::Result<String> {
    let out = Command::new(bin.join("psql"))
        .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-h"])
        .arg(socket_dir)
        .args(["-p", &port.to_string(), "-U", user, "-d", db, "-c", sql])
        .stdin(Stdio::null())
        .output()?;
    check(&format!("psql -c {sql:?}"), &out)?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn check(what: &str, out: &Output) -> io::Result<()> {
    if out.status.success() {
        return Ok(());
    }
    Err(io::Error::other(format!(
        "{what} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stderr).trim(),
        String::from_utf8_lossy(&out.stdout).trim()
    )))
}

fn path_str(p: &Path) -> io::Result<&str> {
    p.to_str()
        .ok_or_else(|| io::Error::other(format!("path {} is not UTF-8", p.display())))
}

fn nanos() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
}

/// A TCP port nobody listens on right now.
fn free_port() -> io::Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Where `initdb` and `pg_ctl` are: `PG_BIN`, else Debian's newest
/// `/usr/lib/postgresql/<version>/bin`, else `PATH`.
pub fn find_pg_bin() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BIN") {
        return Ok(PathBuf::from(dir));
    }
    let mut versions: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let v = e.file_name().to_str()?.parse::<u32>().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((v, bin))
        })
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    for dir in std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()) {
        if dir.join("initdb").exists() && dir.join("pg_ctl").exists() {
            return Ok(dir);
        }
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        "PostgreSQL's initdb was not found (install Debian's postgresql package, or set PG_BIN)",
    ))
}

/// Wait until `f` returns true, polling every 10 ms, for at most `limit`.
pub fn wait_until(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + limit;
    loop {
        if f() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
