//! Which file descriptors of a process are PostgreSQL connections, in the
//! kernel's view (never the shim's word alone).
//!
//! - A process's sockets: `/proc/<pid>/fd/*` links `socket:[<inode>]`.
//! - TCP: the inode's row in `/proc/<pid>/net/tcp` or `tcp6` (the process's
//!   network namespace) whose remote end is the configured server.
//! - Unix: `/proc/net/unix` shows no peers, so the launcher asks the kernel
//!   with NETLINK_SOCK_DIAG (`unix_diag`, exact lookup by inode, with
//!   `UDIAG_SHOW_PEER` and `UDIAG_SHOW_NAME`): a client socket's peer is the
//!   server's accepted socket, which carries the name of the listening
//!   socket, `<dir>/.s.PGSQL.<port>`.
//!
//! Results are cached by inode (socket inodes are not reused in practice:
//! they come from a 32-bit counter), except for sockets not connected yet,
//! which may still connect to the server.

use std::collections::HashMap;
use std::io;
use std::mem::size_of;
use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use plex_pg_config::settings::Postgres;
use serde::{Deserialize, Serialize};

/// A PostgreSQL connection held by a process (in the event log, a
/// `{"fd", "inode", "peer"}` object).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PgFd {
    pub fd: i32,
    pub inode: u64,
    /// The server end: `unix:<path>` or `tcp:<addr>`.
    pub peer: String,
}

/// Where the servers are: every Unix socket path and every TCP address of
/// the configured hosts. Host names are resolved at start and again every
/// [`RESOLVE_EVERY`] by a thread of their own (never on the fork path,
/// where a slow DNS server would keep Plex stopped); an address once seen
/// stays known (connections to a former primary are still PostgreSQL's).
#[derive(Debug)]
struct Servers {
    unix: Vec<PathBuf>,
    tcp: Arc<RwLock<Vec<SocketAddr>>>,
    /// Host names (not literal addresses) to resolve again.
    names: Vec<(String, u16)>,
    /// Literal addresses of the configuration (a learnt address is none).
    literal: Vec<SocketAddr>,
    /// Addresses learnt from the shim's connect reports that no configured
    /// host had: each is warned about once.
    warned: Arc<std::sync::Mutex<std::collections::HashSet<SocketAddr>>>,
}

/// How often host names are resolved again (a DNS-based failover moves
/// the name to another address).
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);

/// The most TCP addresses kept (a runaway DNS answer cannot grow it).
const ADDRESS_LIMIT: usize = 256;

/// What an inode is, as far as we care.
#[derive(Clone, Debug)]
enum Kind {
    Postgres(String),
    Other,
}

/// The classifier: asks the kernel, remembers the answers.
pub struct Kernel {
    servers: Servers,
    cache: HashMap<u64, Kind>,
    diag: Option<OwnedFd>,
    seq: u32,
}

const CACHE_LIMIT: usize = 50_000;

impl Kernel {
    /// A classifier for the configured servers. Host names are resolved
    /// now, and again every [`RESOLVE_EVERY`] in the background.
    pub fn new(pg: &Postgres) -> Kernel {
        let mut unix = Vec::new();
        let mut tcp = Vec::new();
        let mut names = Vec::new();
        for endpoint in pg.endpoints() {
            if let Some(path) = endpoint.socket_path() {
                unix.push(path);
            } else if let Ok(ip) = endpoint.host.parse::<IpAddr>() {
                tcp.push(SocketAddr::new(ip, endpoint.port));
            } else {
                names.push((endpoint.host.clone(), endpoint.port));
            }
        }
        let literal = tcp.clone();
        let tcp = Arc::new(RwLock::new(tcp));
        resolve_into(&names, &tcp);
        if !names.is_empty() {
            let (names, tcp) = (names.clone(), tcp.clone());
            let spawned = std::thread::Builder::new()
                .name("resolve".into())
                .spawn(move || loop {
                    std::thread::sleep(RESOLVE_EVERY);
                    resolve_into(&names, &tcp);
                });
            if let Err(e) = spawned {
                tracing::warn!("cannot start the thread that resolves PostgreSQL's host names again ({e}): a name that moves to another address will not be followed");
            }
        }
        Kernel {
            servers: Servers {
                unix,
                tcp,
                names,
                literal,
                warned: Arc::default(),
            },
            cache: HashMap::new(),
            diag: None,
            seq: 0,
        }
    }

    /// A connect report from the shim: `pid`'s socket `inode` is a
    /// PostgreSQL connection, the shim says. When its peer is none of the
    /// known servers' addresses (a host name moved, or resolves otherwise
    /// for Plex than for the launcher), the peer is learnt at once, so the
    /// pool and inherited-socket checks keep seeing this connection and
    /// the ones after it, and the host names are resolved again at once on
    /// a thread of their own (DNS may be slow; the report path must not
    /// wait). If the peer is still none of theirs, one warning names it
    /// (once per address).
    pub fn follow_connect(&mut self, pid: i32, inode: u64) {
        // Only TCP servers move: with Unix sockets alone (the server's
        // path does not move) there is nothing to follow, and nothing is
        // read from the kernel here.
        if self.servers.names.is_empty() && self.servers.literal.is_empty() {
            return;
        }
        let mut table = None;
        if let Some(Kind::Postgres(_)) = self.classify(pid, inode, &mut table) {
            return;
        }
        // A Unix socket (or one closed already) is in no TCP table.
        let Some(&(remote, _)) = table
            .get_or_insert_with(|| crate::proc::tcp_table(pid))
            .get(&inode)
        else {
            return;
        };
        {
            let mut known = self.servers.tcp.write().unwrap_or_else(|e| e.into_inner());
            if known.len() >= ADDRESS_LIMIT {
                tracing::warn!("pid {pid} connected to PostgreSQL at {remote}, an address no configured host has, and {ADDRESS_LIMIT} addresses are known already: its connections are not recognised");
                return;
            }
            if !known.iter().any(|a| same_endpoint(a, &remote)) {
                known.push(remote);
            }
        }
        self.cache.remove(&inode);
        let (names, tcp, literal, warned) = (
            self.servers.names.clone(),
            self.servers.tcp.clone(),
            self.servers.literal.clone(),
            self.servers.warned.clone(),
        );
        let check = move || {
            let resolved = resolve_into(&names, &tcp);
            let attributed = literal
                .iter()
                .chain(resolved.iter())
                .any(|a| same_endpoint(a, &remote));
            if !attributed
                && warned
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(remote)
            {
                tracing::warn!(
                    "pid {pid} connected to PostgreSQL at {remote}, which no configured host has ({}): recognised as PostgreSQL's from now on, since the shim said so; check postgres.host",
                    if names.is_empty() {
                        "the configuration names addresses only".to_string()
                    } else {
                        format!("resolved again just now: {}", names.iter().map(|(n, p)| format!("{n}:{p}")).collect::<Vec<_>>().join(", "))
                    }
                );
            }
        };
        if self.servers.names.is_empty() {
            check();
        } else if let Err(e) = std::thread::Builder::new()
            .name("resolve-now".into())
            .spawn(check)
        {
            tracing::warn!("cannot start a thread to resolve PostgreSQL's host names again ({e})");
        }
    }

    /// The servers, for messages.
    pub fn describe_server(&self) -> String {
        let mut parts: Vec<String> = self
            .servers
            .unix
            .iter()
            .map(|p| format!("unix:{}", p.display()))
            .collect();
        let tcp = self.servers.tcp.read().unwrap_or_else(|e| e.into_inner());
        parts.extend(tcp.iter().map(|a| format!("tcp:{a}")));
        for (name, port) in &self.servers.names {
            if tcp.is_empty() {
                parts.push(format!("tcp:{name}:{port} (unresolved)"));
            }
        }
        parts.join(", ")
    }

    /// Every socket fd of `pid`: (fd, inode).
    pub fn socket_fds(pid: i32) -> io::Result<Vec<(i32, u64)>> {
        crate::proc::socket_fds(pid)
    }

    /// The socket inode `fd` of `pid` refers to now, if it is a socket.
    pub fn fd_inode(pid: i32, fd: i32) -> Option<u64> {
        crate::proc::fd_inode(pid, fd)
    }

    /// Every PostgreSQL connection `pid` holds.
    pub fn pg_fds(&mut self, pid: i32) -> io::Result<Vec<PgFd>> {
        let sockets = Self::socket_fds(pid)?;
        let mut tcp: Option<HashMap<u64, (SocketAddr, bool)>> = None;
        let mut out = Vec::new();
        for (fd, inode) in sockets {
            if let Some(Kind::Postgres(peer)) = self.classify(pid, inode, &mut tcp) {
                out.push(PgFd { fd, inode, peer });
            }
        }
        Ok(out)
    }

    /// The PostgreSQL connection `fd` of `pid` refers to now, if it is
    /// one: one `readlink` of `/proc/<pid>/fd/<fd>` (and, for an inode not
    /// classified yet, the lookups [`Kernel::pg_fds`] makes). What a
    /// process is known to hold is confirmed with this, fd by fd, instead
    /// of reading its whole fd table.
    pub fn pg_fd(&mut self, pid: i32, fd: i32) -> Option<PgFd> {
        let inode = Self::fd_inode(pid, fd)?;
        match self.classify(pid, inode, &mut None)? {
            Kind::Postgres(peer) => Some(PgFd { fd, inode, peer }),
            Kind::Other => None,
        }
    }

    /// Which of `of` (by inode) `pid` still holds, under any fd number.
    pub fn still_held(pid: i32, of: &[PgFd]) -> io::Result<Vec<PgFd>> {
        if of.is_empty() {
            return Ok(Vec::new());
        }
        let sockets = Self::socket_fds(pid)?;
        Ok(sockets
            .into_iter()
            .filter_map(|(fd, inode)| {
                of.iter().find(|p| p.inode == inode).map(|p| PgFd {
                    fd,
                    inode,
                    peer: p.peer.clone(),
                })
            })
            .collect())
    }

    /// Classify one inode seen in `pid`. `None`: not a socket we could look up.
    fn classify(
        &mut self,
        pid: i32,
        inode: u64,
        tcp: &mut Option<HashMap<u64, (SocketAddr, bool)>>,
    ) -> Option<Kind> {
        if let Some(k) = self.cache.get(&inode) {
            return Some(k.clone());
        }
        let (kind, final_answer) = self.classify_uncached(pid, inode, tcp);
        if final_answer {
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            self.cache.insert(inode, kind.clone());
        }
        Some(kind)
    }

    /// What `inode` is, and whether that answer is final (a socket not
    /// connected yet may still connect to the server).
    fn classify_uncached(
        &mut self,
        pid: i32,
        inode: u64,
        tcp: &mut Option<HashMap<u64, (SocketAddr, bool)>>,
    ) -> (Kind, bool) {
        if !self.servers.unix.is_empty() {
            match self.unix_peer_name(inode) {
                Ok(Some(Some(name))) => {
                    let is_pg = self.servers.unix.iter().any(|p| same_socket_path(&name, p));
                    let kind = if is_pg {
                        Kind::Postgres(format!("unix:{}", name.display()))
                    } else {
                        Kind::Other
                    };
                    return (kind, true);
                }
                // A unix socket without a peer: not connected (yet).
                Ok(Some(None)) => return (Kind::Other, false),
                // Not a unix socket: maybe a TCP one.
                Ok(None) => {}
                Err(e) => {
                    tracing::debug!("unix_diag lookup of inode {inode} failed: {e}");
                    return (Kind::Other, false);
                }
            }
        }
        let addrs = self.servers.tcp.read().unwrap_or_else(|e| e.into_inner());
        if addrs.is_empty() && self.servers.names.is_empty() {
            return (Kind::Other, true);
        }
        let table = tcp.get_or_insert_with(|| crate::proc::tcp_table(pid));
        match table.get(&inode) {
            Some((remote, connected)) => {
                let is_pg = addrs.iter().any(|a| same_endpoint(a, remote));
                let kind = if is_pg {
                    Kind::Postgres(format!("tcp:{remote}"))
                } else {
                    Kind::Other
                };
                // Not PostgreSQL's now, but a name may resolve to this
                // address later: only a positive answer is final.
                (kind, is_pg || (*connected && self.servers.names.is_empty()))
            }
            None => (Kind::Other, false),
        }
    }

    /// `Ok(None)`: `inode` is not a unix socket. `Ok(Some(None))`: it has no
    /// peer. `Ok(Some(Some(name)))`: the name of its peer (empty if unnamed).
    fn unix_peer_name(&mut self, inode: u64) -> io::Result<Option<Option<PathBuf>>> {
        let Some(own) = self.unix_diag(inode)? else {
            return Ok(None);
        };
        let Some(peer) = own.peer else {
            return Ok(Some(None));
        };
        let name = self
            .unix_diag(peer as u64)?
            .and_then(|p| p.name)
            .unwrap_or_default();
        Ok(Some(Some(name)))
    }

    /// One exact `unix_diag` lookup.
    fn unix_diag(&mut self, inode: u64) -> io::Result<Option<UnixInfo>> {
        if inode > u32::MAX as u64 {
            return Ok(None);
        }
        if self.diag.is_none() {
            // SAFETY: socket(2) takes plain integers.
            let fd = unsafe {
                libc::socket(
                    libc::AF_NETLINK,
                    libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
                    libc::NETLINK_SOCK_DIAG,
                )
            };
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            // SAFETY: fd was just created and nothing else owns it.
            self.diag = Some(unsafe { OwnedFd::from_raw_fd(fd) });
        }
        let fd = self.diag.as_ref().unwrap().as_raw_fd();
        self.seq = self.seq.wrapping_add(1);
        let req = DiagRequest {
            hdr: NlMsgHdr {
                len: size_of::<DiagRequest>() as u32,
                ty: SOCK_DIAG_BY_FAMILY,
                flags: libc::NLM_F_REQUEST as u16,
                seq: self.seq,
                pid: 0,
            },
            family: libc::AF_UNIX as u8,
            protocol: 0,
            pad: 0,
            states: u32::MAX,
            ino: inode as u32,
            show: UDIAG_SHOW_NAME | UDIAG_SHOW_PEER,
            cookie: [u32::MAX, u32::MAX],
        };
        // SAFETY: sends `req`, a live value of exactly that size, on our
        // netlink socket.
        let n = unsafe {
            libc::send(
                fd,
                (&req as *const DiagRequest).cast(),
                size_of::<DiagRequest>(),
                0,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut buf = [0u8; 8192];
        loop {
            // SAFETY: receives at most `buf.len()` bytes into `buf`.
            let n = unsafe { libc::recv(fd, buf.as_mut_ptr().cast(), buf.len(), 0) };
            if n < 0 {
                return Err(io::Error::last_os_error());
            }
            let msg = &buf[..n as usize];
            if msg.len() < 16 {
                return Err(io::Error::other("short netlink reply"));
            }
            let len = u32::from_ne_bytes(msg[0..4].try_into().unwrap()) as usize;
            let ty = u16::from_ne_bytes(msg[4..6].try_into().unwrap());
            let seq = u32::from_ne_bytes(msg[8..12].try_into().unwrap());
            if seq != self.seq {
                continue; // a stale reply to an earlier request
            }
            let msg = &msg[..len.min(msg.len())];
            if ty == libc::NLMSG_ERROR as u16 {
                let err = i32::from_ne_bytes(
                    msg.get(16..20)
                        .ok_or_else(|| io::Error::other("short netlink error"))?
                        .try_into()
                        .unwrap(),
                );
                return match -err {
                    0 => Ok(None),
                    libc::ENOENT => Ok(None),
                    e => Err(io::Error::from_raw_os_error(e)),
                };
            }
            if ty != SOCK_DIAG_BY_FAMILY {
                return Err(io::Error::other(format!(
                    "unexpected netlink message type {ty}"
                )));
            }
            return Ok(Some(parse_unix_diag(&msg[16..])));
        }
    }
}

fn canonical_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

fn same_endpoint(a: &SocketAddr, b: &SocketAddr) -> bool {
    a.port() == b.port() && canonical_ip(a.ip()) == canonical_ip(b.ip())
}

/// The server's socket path as the server bound it, compared with the
/// configured one (also after resolving symbolic links in the directory).
fn same_socket_path(bound: &Path, configured: &Path) -> bool {
    if bound == configured {
        return true;
    }
    if bound.file_name() != configured.file_name() {
        return false;
    }
    match (
        bound.parent().map(std::fs::canonicalize),
        configured.parent().map(std::fs::canonicalize),
    ) {
        (Some(Ok(a)), Some(Ok(b))) => a == b,
        _ => false,
    }
}

const SOCK_DIAG_BY_FAMILY: u16 = 20;
const UDIAG_SHOW_NAME: u32 = 0x1;
const UDIAG_SHOW_PEER: u32 = 0x4;
const UNIX_DIAG_NAME: u16 = 0;
const UNIX_DIAG_PEER: u16 = 2;

#[repr(C)]
struct NlMsgHdr {
    len: u32,
    ty: u16,
    flags: u16,
    seq: u32,
    pid: u32,
}

/// `struct nlmsghdr` followed by `struct unix_diag_req`.
#[repr(C)]
struct DiagRequest {
    hdr: NlMsgHdr,
    family: u8,
    protocol: u8,
    pad: u16,
    states: u32,
    ino: u32,
    show: u32,
    cookie: [u32; 2],
}

#[derive(Debug, Default)]
struct UnixInfo {
    name: Option<PathBuf>,
    peer: Option<u32>,
}

/// Parse `struct unix_diag_msg` (16 bytes) and its attributes.
fn parse_unix_diag(body: &[u8]) -> UnixInfo {
    use std::os::unix::ffi::OsStrExt;
    let mut info = UnixInfo::default();
    let mut pos = 16;
    while pos + 4 <= body.len() {
        let len = u16::from_ne_bytes(body[pos..pos + 2].try_into().unwrap()) as usize;
        let ty = u16::from_ne_bytes(body[pos + 2..pos + 4].try_into().unwrap());
        if len < 4 || pos + len > body.len() {
            break;
        }
        let data = &body[pos + 4..pos + len];
        match ty {
            UNIX_DIAG_NAME => {
                let end = data
                    .iter()
                    .rposition(|&b| b != 0)
                    .map(|i| i + 1)
                    .unwrap_or(0);
                info.name = Some(PathBuf::from(std::ffi::OsStr::from_bytes(&data[..end])));
            }
            UNIX_DIAG_PEER if data.len() >= 4 => {
                let peer = u32::from_ne_bytes(data[..4].try_into().unwrap());
                if peer != 0 {
                    info.peer = Some(peer);
                }
            }
            _ => {}
        }
        pos += (len + 3) & !3;
    }
    info
}

/// Resolve `names` and add every new address to `known`.
fn resolve_into(names: &[(String, u16)], known: &RwLock<Vec<SocketAddr>>) -> Vec<SocketAddr> {
    let mut resolved = Vec::new();
    for (name, port) in names {
        match (name.as_str(), *port).to_socket_addrs() {
            Ok(addrs) => {
                let mut known = known.write().unwrap_or_else(|e| e.into_inner());
                for addr in addrs {
                    resolved.push(addr);
                    if !known.contains(&addr) && known.len() < ADDRESS_LIMIT {
                        tracing::info!("PostgreSQL host {name} is at {addr}");
                        known.push(addr);
                    }
                }
            }
            Err(e) => tracing::warn!(
                "cannot resolve the PostgreSQL host {name:?} ({e}): TCP connections to it are recognised only at the addresses it had before"
            ),
        }
    }
    resolved
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::{UnixListener, UnixStream};

    #[test]
    fn unix_peer_is_recognised_by_listener_name() {
        let dir = std::env::temp_dir().join(format!("plex-pg-sockets-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".s.PGSQL.5999");
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let client = UnixStream::connect(&path).unwrap();
        let (_accepted, _) = listener.accept().unwrap();
        let (other_a, _other_b) = UnixStream::pair().unwrap();
        let pg = Postgres {
            hosts: vec![dir.display().to_string()],
            ports: vec![5999],
            ..plex_pg_config::Settings::default().postgres
        };
        let mut kernel = Kernel::new(&pg);
        let me = std::process::id() as i32;
        let found = kernel.pg_fds(me).unwrap();
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!(found[0].fd, client.as_raw_fd());
        assert!(
            found[0].peer.ends_with(".s.PGSQL.5999"),
            "{}",
            found[0].peer
        );
        assert!(!found.iter().any(|f| f.fd == other_a.as_raw_fd()));
        let held = Kernel::still_held(me, &found).unwrap();
        assert_eq!(held, found);
        drop(client);
        assert!(Kernel::still_held(me, &found).unwrap().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn tcp_peer_is_recognised_by_remote_address() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _accepted = listener.accept().unwrap();
        let pg = Postgres {
            hosts: vec!["127.0.0.1".into()],
            ports: vec![port],
            ..plex_pg_config::Settings::default().postgres
        };
        let mut kernel = Kernel::new(&pg);
        let found = kernel.pg_fds(std::process::id() as i32).unwrap();
        assert_eq!(
            found.iter().map(|f| f.fd).collect::<Vec<_>>(),
            vec![client.as_raw_fd()]
        );
        assert_eq!(found[0].peer, format!("tcp:127.0.0.1:{port}"));
    }

    #[test]
    fn every_configured_server_is_recognised_unix_and_tcp_by_name() {
        let dir = std::env::temp_dir().join(format!("plex-pg-sockets-many-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(".s.PGSQL.5998");
        let _ = std::fs::remove_file(&path);
        let unix_listener = UnixListener::bind(&path).unwrap();
        let unix_client = UnixStream::connect(&path).unwrap();
        let _unix_accepted = unix_listener.accept().unwrap();
        let tcp_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp_listener.local_addr().unwrap().port();
        let tcp_client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let _tcp_accepted = tcp_listener.accept().unwrap();
        // Another TCP connection, to a port that is not configured.
        let other_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other = std::net::TcpStream::connect(other_listener.local_addr().unwrap()).unwrap();
        let pg = Postgres {
            // A socket directory, then a host name (resolved, not literal).
            hosts: vec![dir.display().to_string(), "localhost".into()],
            ports: vec![5998, port],
            ..plex_pg_config::Settings::default().postgres
        };
        let mut kernel = Kernel::new(&pg);
        let mut found: Vec<i32> = kernel
            .pg_fds(std::process::id() as i32)
            .unwrap()
            .iter()
            .map(|f| f.fd)
            .collect();
        found.sort_unstable();
        let mut want = vec![unix_client.as_raw_fd(), tcp_client.as_raw_fd()];
        want.sort_unstable();
        assert_eq!(found, want, "{}", kernel.describe_server());
        assert!(!found.contains(&other.as_raw_fd()));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
