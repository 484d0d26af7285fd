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

use plex_pg_config::settings::Postgres;
use serde_json::{json, Value};

/// A PostgreSQL connection held by a process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PgFd {
    pub fd: i32,
    pub inode: u64,
    /// The server end: `unix:<path>` or `tcp:<addr>`.
    pub peer: String,
}

impl PgFd {
    pub fn to_json(&self) -> Value {
        json!({"fd": self.fd, "inode": self.inode, "peer": self.peer})
    }
}

/// A list of fds as JSON.
pub fn fds_json(fds: &[PgFd]) -> Value {
    Value::Array(fds.iter().map(PgFd::to_json).collect())
}

/// Where the server is.
#[derive(Clone, Debug)]
enum Server {
    Unix(PathBuf),
    Tcp(Vec<SocketAddr>),
}

/// What an inode is, as far as we care.
#[derive(Clone, Debug)]
enum Kind {
    Postgres(String),
    Other,
}

/// The classifier: asks the kernel, remembers the answers.
pub struct Kernel {
    server: Server,
    cache: HashMap<u64, Kind>,
    diag: Option<OwnedFd>,
    seq: u32,
}

const CACHE_LIMIT: usize = 50_000;

impl Kernel {
    /// A classifier for the configured server. A host name is resolved now.
    pub fn new(pg: &Postgres) -> Kernel {
        let server = match pg.socket_path() {
            Some(p) => Server::Unix(p),
            None => {
                let addrs: Vec<SocketAddr> = (pg.host.as_str(), pg.port)
                    .to_socket_addrs()
                    .map(|it| it.collect())
                    .unwrap_or_else(|e| {
                        tracing::warn!(
                            "cannot resolve the PostgreSQL host {:?} ({e}): TCP connections to it will not be recognised",
                            pg.host
                        );
                        Vec::new()
                    });
                Server::Tcp(addrs)
            }
        };
        Kernel {
            server,
            cache: HashMap::new(),
            diag: None,
            seq: 0,
        }
    }

    /// The server, for messages.
    pub fn describe_server(&self) -> String {
        match &self.server {
            Server::Unix(p) => format!("unix:{}", p.display()),
            Server::Tcp(a) => format!("tcp:{a:?}"),
        }
    }

    /// Every socket fd of `pid`: (fd, inode).
    pub fn socket_fds(pid: i32) -> io::Result<Vec<(i32, u64)>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))? {
            let Ok(entry) = entry else { continue };
            let Some(fd) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<i32>().ok())
            else {
                continue;
            };
            if let Some(inode) = link_inode(&entry.path()) {
                out.push((fd, inode));
            }
        }
        out.sort_unstable();
        Ok(out)
    }

    /// The socket inode `fd` of `pid` refers to now, if it is a socket.
    pub fn fd_inode(pid: i32, fd: i32) -> Option<u64> {
        link_inode(Path::new(&format!("/proc/{pid}/fd/{fd}")))
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
        let (kind, final_answer) = match &self.server {
            Server::Unix(path) => {
                let path = path.clone();
                match self.unix_peer_name(inode) {
                    Ok(Some(Some(name))) => {
                        let is_pg = same_socket_path(&name, &path);
                        (
                            if is_pg {
                                Kind::Postgres(format!("unix:{}", name.display()))
                            } else {
                                Kind::Other
                            },
                            true,
                        )
                    }
                    // A unix socket without a peer: not connected (yet).
                    Ok(Some(None)) => (Kind::Other, false),
                    // Not a unix socket.
                    Ok(None) => (Kind::Other, true),
                    Err(e) => {
                        tracing::debug!("unix_diag lookup of inode {inode} failed: {e}");
                        (Kind::Other, false)
                    }
                }
            }
            Server::Tcp(addrs) => {
                let table = tcp.get_or_insert_with(|| tcp_table(pid));
                match table.get(&inode) {
                    Some((remote, connected)) => {
                        let is_pg = addrs.iter().any(|a| same_endpoint(a, remote));
                        (
                            if is_pg {
                                Kind::Postgres(format!("tcp:{remote}"))
                            } else {
                                Kind::Other
                            },
                            *connected || is_pg,
                        )
                    }
                    None => (Kind::Other, false),
                }
            }
        };
        if final_answer {
            if self.cache.len() >= CACHE_LIMIT {
                self.cache.clear();
            }
            self.cache.insert(inode, kind.clone());
        }
        Some(kind)
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
            // SAFETY: fd was just created.
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

/// Inode of a `socket:[N]` link.
fn link_inode(link: &Path) -> Option<u64> {
    let target = std::fs::read_link(link).ok()?;
    let s = target.to_str()?;
    s.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok()
}

/// TCP sockets of `pid`'s network namespace: inode → (remote, established).
fn tcp_table(pid: i32) -> HashMap<u64, (SocketAddr, bool)> {
    let mut table = HashMap::new();
    let Ok(process) = procfs::process::Process::new(pid) else {
        return table;
    };
    for entries in [process.tcp(), process.tcp6()].into_iter().flatten() {
        for e in entries {
            let established = e.state == procfs::net::TcpState::Established;
            table.insert(e.inode, (e.remote_address, established));
        }
    }
    table
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
            host: dir.display().to_string(),
            port: 5999,
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
            host: "127.0.0.1".into(),
            port,
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
}
