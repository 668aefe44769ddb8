//! A real PostgreSQL primary and streaming replica on loopback, for tests that need a database
//! that can crash, restart and fail over.
//!
//! Needs the PostgreSQL server binaries: on Debian/Ubuntu `apt-get install postgresql` (found
//! under `/usr/lib/postgresql/<version>/bin`, highest version first), or any directory named by
//! `WATERTIGHT_PG_BIN`, or `pg_ctl` on `PATH`. PostgreSQL refuses to run as root, so when the
//! tests run as root every server binary runs as the `postgres` system user through `runuser`.
//!
//! Every node lives in one scratch directory under `/tmp` (data directories, logs and unix
//! sockets), listens on `127.0.0.1` only, trusts every local connection (user `postgres`,
//! database `postgres`) and runs with `fsync = off`. A node stops its server (immediate mode)
//! when dropped, so no server outlives its test, even one that panics; the scratch directory
//! goes with the last node.
//!
//! The methods that run `pg_ctl` block the calling thread until it is done (well under a second
//! for stop and promote, about a second for a start); the `start` constructors run their setup
//! on the blocking pool.

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use tempfile::TempDir;
use tokio_postgres::{Client, NoTls};

/// How long `pg_ctl` may wait for a server to start, stop or promote, in seconds.
const PG_CTL_WAIT_SECS: u64 = 60;
/// How long any one command (initdb, pg_basebackup, pg_ctl) may take before it is killed.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the async constructors wait for a started node to answer a query.
const READY_TIMEOUT: Duration = Duration::from_secs(30);
/// Attempts at starting a new node on a fresh port when the one picked was taken meanwhile.
const BIND_ATTEMPTS: usize = 5;

/// Whether the PostgreSQL server binaries (`initdb`, `pg_ctl`, `postgres`, `pg_basebackup`) are
/// installed where this harness looks for them.
pub fn available() -> bool {
    bin_dir().is_some()
}

/// A primary and a streaming replica of it (hot standby, so it takes read-only queries).
pub struct PgPair {
    /// The read-write node.
    pub primary: PgNode,
    /// A streaming replica of `primary`, made with `pg_basebackup -R`.
    pub replica: PgNode,
}

impl PgPair {
    /// Starts a primary and a streaming replica of it, both accepting connections.
    ///
    /// Panics (with the server log) when either fails to start, and with an install hint when
    /// PostgreSQL is missing.
    pub async fn start() -> PgPair {
        let primary = PgNode::start_primary().await;
        let replica = primary.start_replica().await;
        PgPair { primary, replica }
    }
}

/// One PostgreSQL server on `127.0.0.1:port`.
pub struct PgNode {
    /// `primary`, `replica`, `replica2`, …: also its data directory's name.
    pub name: String,
    /// The TCP port it listens on (loopback only).
    pub port: u16,
    /// `127.0.0.1:port`.
    pub addr: SocketAddr,
    data: PathBuf,
    log: PathBuf,
    scratch: Arc<Scratch>,
}

impl PgNode {
    /// Initializes and starts a standalone primary, accepting connections when this returns.
    pub async fn start_primary() -> PgNode {
        let node = tokio::task::spawn_blocking(|| {
            let scratch = Arc::new(Scratch::new());
            let data = scratch.path().join("primary");
            scratch.init_primary(&data);
            PgNode::boot(scratch, "primary".to_owned(), data)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        node.wait_ready(READY_TIMEOUT).await;
        node
    }

    /// Makes a streaming replica of this node (`pg_basebackup -c fast -R -X stream`) and starts
    /// it; it takes read-only queries when this returns. This node must be running.
    pub async fn start_replica(&self) -> PgNode {
        let scratch = Arc::clone(&self.scratch);
        let source = self.port;
        let source_log = self.log.clone();
        let node = tokio::task::spawn_blocking(move || {
            let n = scratch.replicas.fetch_add(1, Ordering::Relaxed) + 1;
            let name = if n == 1 {
                "replica".to_owned()
            } else {
                format!("replica{n}")
            };
            let data = scratch.path().join(&name);
            scratch.base_backup(source, &data, &source_log);
            PgNode::boot(scratch, name, data)
        })
        .await
        .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()));
        node.wait_ready(READY_TIMEOUT).await;
        node
    }

    /// Starts the server in `data` on a free port, trying fresh ports when the picked one was
    /// taken between picking and binding.
    fn boot(scratch: Arc<Scratch>, name: String, data: PathBuf) -> PgNode {
        let log = scratch.path().join(format!("{name}.log"));
        for attempt in 1..=BIND_ATTEMPTS {
            let port = free_port();
            // The last `port` line wins, so appending overrides the one a base backup copied.
            append(&data.join("postgresql.conf"), &format!("port = {port}\n"));
            let node = PgNode {
                name: name.clone(),
                port,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                data: data.clone(),
                log: log.clone(),
                scratch: Arc::clone(&scratch),
            };
            match node.pg_ctl(&["start"]) {
                Ok(_) => return node,
                Err(e) => {
                    let log_text = node.log();
                    let taken = log_text.contains("could not bind")
                        || log_text.contains("Address already in use");
                    if !(taken && attempt < BIND_ATTEMPTS) {
                        panic!(
                            "PostgreSQL node {name} failed to start: {e}\n{}",
                            node.log_tail()
                        );
                    }
                }
            }
        }
        unreachable!("the last attempt panics")
    }

    /// Connection parameters for this node: host `127.0.0.1`, its port, user and database
    /// `postgres`, a 5 s connect timeout.
    pub fn config(&self) -> tokio_postgres::Config {
        let mut config = tokio_postgres::Config::new();
        config
            .host("127.0.0.1")
            .port(self.port)
            .user("postgres")
            .dbname("postgres")
            .connect_timeout(Duration::from_secs(5));
        config
    }

    /// A libpq connection string for this node, e.g. for a proxy config.
    pub fn conninfo(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// Connects as `postgres` to database `postgres`, driving the connection on a spawned task.
    pub async fn try_connect(&self) -> Result<Client, tokio_postgres::Error> {
        let (client, connection) = self.config().connect(NoTls).await?;
        tokio::spawn(async move {
            let _ = connection.await;
        });
        Ok(client)
    }

    /// [`try_connect`](Self::try_connect), panicking (with the server log) on failure.
    pub async fn connect(&self) -> Client {
        self.try_connect().await.unwrap_or_else(|e| {
            panic!(
                "cannot connect to PostgreSQL node {} at {}: {e}\n{}",
                self.name,
                self.addr,
                self.log_tail()
            )
        })
    }

    /// `SELECT pg_is_in_recovery()` on a new connection: true on a replica, false on a primary.
    pub async fn is_in_recovery(&self) -> bool {
        self.connect()
            .await
            .query_one("SELECT pg_is_in_recovery()", &[])
            .await
            .unwrap_or_else(|e| panic!("pg_is_in_recovery() on {}: {e}", self.name))
            .get(0)
    }

    /// Waits until the node accepts a connection and answers `SELECT 1`; panics with the server
    /// log after `timeout`.
    pub async fn wait_ready(&self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let error = match self.try_connect().await {
                Ok(client) => match client.simple_query("SELECT 1").await {
                    Ok(_) => return,
                    Err(e) => e,
                },
                Err(e) => e,
            };
            if Instant::now() >= deadline {
                panic!(
                    "PostgreSQL node {} at {} not ready after {timeout:?}: {error}\n{}",
                    self.name,
                    self.addr,
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `pg_ctl stop -m immediate`: every server process quits at once without a checkpoint, as
    /// in a crash; the next start runs crash recovery. Panics if it is not running.
    pub fn stop_immediate(&self) {
        self.expect(
            self.pg_ctl(&["stop", "-m", "immediate"]),
            "stop -m immediate",
        );
    }

    /// `pg_ctl stop -m fast`: a clean shutdown that aborts open transactions and disconnects
    /// clients. Panics if it is not running.
    pub fn stop_fast(&self) {
        self.expect(self.pg_ctl(&["stop", "-m", "fast"]), "stop -m fast");
    }

    /// Starts the server again after a stop, on the same port; returns once `pg_ctl` sees it
    /// ready (use [`wait_ready`](Self::wait_ready) to be sure it answers queries).
    pub fn start(&self) {
        self.expect(self.pg_ctl(&["start"]), "start");
    }

    /// `pg_ctl promote -w`: a replica becomes a read-write primary; returns once it is one.
    pub fn promote(&self) {
        self.expect(self.pg_ctl(&["promote"]), "promote");
    }

    /// Whether the server is running (its `postmaster.pid` exists).
    pub fn is_running(&self) -> bool {
        self.data.join("postmaster.pid").exists()
    }

    /// The node's data directory.
    pub fn data_dir(&self) -> &Path {
        &self.data
    }

    /// Everything the server has logged so far.
    pub fn log(&self) -> String {
        fs::read(&self.log)
            .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            .unwrap_or_else(|e| format!("(no log at {}: {e})", self.log.display()))
    }

    /// The end of the server log, headed, for panic messages.
    fn log_tail(&self) -> String {
        let log = self.log();
        let cut = log.len().saturating_sub(8_000);
        let cut = (cut..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(log.len());
        format!(
            "--- server log {} ---\n{}--- end of log ---",
            self.log.display(),
            &log[cut..]
        )
    }

    fn expect(&self, result: Result<String, String>, what: &str) {
        if let Err(e) = result {
            panic!(
                "pg_ctl {what} on PostgreSQL node {} failed: {e}\n{}",
                self.name,
                self.log_tail()
            );
        }
    }

    /// Runs `pg_ctl -D data -l log -w -t … <action…>`.
    fn pg_ctl(&self, action: &[&str]) -> Result<String, String> {
        let mut command = self.scratch.command("pg_ctl");
        command
            .arg("-D")
            .arg(&self.data)
            .arg("-l")
            .arg(&self.log)
            .args(["-w", "-t", &PG_CTL_WAIT_SECS.to_string()])
            .args(action);
        run(command, COMMAND_TIMEOUT)
    }
}

impl Drop for PgNode {
    /// Stops the server (immediate mode) if it is running; errors are ignored.
    fn drop(&mut self) {
        if self.is_running() {
            let _ = self.pg_ctl(&["stop", "-m", "immediate"]);
        }
    }
}

/// The scratch directory every node of one [`PgNode::start_primary`] family lives in, and how
/// to run the server binaries.
struct Scratch {
    dir: TempDir,
    bin: PathBuf,
    /// Run the binaries as the `postgres` user (we are root).
    as_postgres: bool,
    /// Replicas made so far, for their names.
    replicas: AtomicUsize,
}

impl Scratch {
    fn new() -> Scratch {
        let bin = bin_dir().unwrap_or_else(|| {
            panic!(
                "PostgreSQL server binaries (initdb, pg_ctl, postgres, pg_basebackup) not found \
                 under /usr/lib/postgresql/*/bin, in $WATERTIGHT_PG_BIN or on PATH: install \
                 postgresql (Debian/Ubuntu: apt-get install -y postgresql)"
            )
        });
        let as_postgres = effective_uid() == 0;
        // As root the directory must be reachable by `postgres`: /tmp rather than a $TMPDIR
        // that may sit in root's home.
        let parent = if as_postgres {
            PathBuf::from("/tmp")
        } else {
            std::env::temp_dir()
        };
        let dir = tempfile::Builder::new()
            .prefix("watertight-pg-")
            .tempdir_in(&parent)
            .unwrap_or_else(|e| panic!("cannot make a temp dir in {}: {e}", parent.display()));
        if as_postgres {
            use std::os::unix::fs::PermissionsExt;
            let (uid, gid) = postgres_ids();
            fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755))
                .unwrap_or_else(|e| panic!("chmod {}: {e}", dir.path().display()));
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .unwrap_or_else(|e| panic!("chown postgres {}: {e}", dir.path().display()));
        }
        Scratch {
            dir,
            bin,
            as_postgres,
            replicas: AtomicUsize::new(0),
        }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A command running server binary `program`, as `postgres` when we are root, in the
    /// scratch directory, with no `PG*` variables from our environment.
    fn command(&self, program: &str) -> Command {
        let exe = self.bin.join(program);
        let mut command = if self.as_postgres {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(exe);
            command
        } else {
            Command::new(exe)
        };
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                command.env_remove(key);
            }
        }
        command.current_dir(self.path()).env("LC_ALL", "C");
        command
    }

    /// `initdb` into `data`, then our settings and a trust-everything-local `pg_hba.conf`.
    fn init_primary(&self, data: &Path) {
        let mut command = self.command("initdb");
        command
            .arg("-D")
            .arg(data)
            .args(["-U", "postgres", "-A", "trust", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"]);
        if let Err(e) = run(command, COMMAND_TIMEOUT) {
            panic!("initdb failed: {e}");
        }
        let sockets = self.path().display().to_string().replace('\'', "''");
        append(
            &data.join("postgresql.conf"),
            &format!(
                "\n# watertight test harness\n\
                 listen_addresses = '127.0.0.1'\n\
                 unix_socket_directories = '{sockets}'\n\
                 fsync = off\n\
                 synchronous_commit = off\n\
                 wal_level = replica\n\
                 max_wal_senders = 5\n\
                 max_replication_slots = 5\n\
                 hot_standby = on\n\
                 wal_retrieve_retry_interval = '200ms'\n\
                 shared_buffers = '16MB'\n\
                 max_connections = 50\n\
                 huge_pages = off\n\
                 logging_collector = off\n\
                 log_line_prefix = '%m [%p] %q%a '\n"
            ),
        );
        // initdb made the file, so as root it belongs to postgres; rewriting keeps that.
        overwrite(
            &data.join("pg_hba.conf"),
            "local all all trust\n\
             host all all 127.0.0.1/32 trust\n\
             local replication all trust\n\
             host replication all 127.0.0.1/32 trust\n",
        );
    }

    /// `pg_basebackup` from the node on `port` into `data`, with `standby.signal` and
    /// `primary_conninfo` written (`-R`).
    fn base_backup(&self, port: u16, data: &Path, source_log: &Path) {
        let mut command = self.command("pg_basebackup");
        command
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .arg("-D")
            .arg(data)
            .args(["-c", "fast", "-R", "-X", "stream", "--no-sync"]);
        if let Err(e) = run(command, COMMAND_TIMEOUT) {
            let log = fs::read_to_string(source_log).unwrap_or_default();
            panic!(
                "pg_basebackup from 127.0.0.1:{port} failed: {e}\n--- source server log ---\n{log}"
            );
        }
    }
}

/// The directory holding the PostgreSQL server binaries: `$WATERTIGHT_PG_BIN`, else the
/// highest `/usr/lib/postgresql/<version>/bin`, else wherever `pg_ctl` is on `PATH`.
fn bin_dir() -> Option<PathBuf> {
    let complete = |dir: &Path| {
        ["initdb", "pg_ctl", "postgres", "pg_basebackup"]
            .iter()
            .all(|b| dir.join(b).is_file())
    };
    if let Some(dir) = std::env::var_os("WATERTIGHT_PG_BIN") {
        let dir = PathBuf::from(dir);
        return complete(&dir).then_some(dir);
    }
    let mut versions: Vec<(Vec<u32>, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let version = entry
                .file_name()
                .to_str()?
                .split('.')
                .map(|part| part.parse().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((version, entry.path().join("bin")))
        })
        .filter(|(_, dir)| complete(dir))
        .collect();
    versions.sort();
    if let Some((_, dir)) = versions.pop() {
        return Some(dir);
    }
    std::env::split_paths(&std::env::var_os("PATH")?).find(|dir| complete(dir))
}

/// Our effective user id, from `/proc/self/status` (or `id -u` where there is no procfs).
fn effective_uid() -> u32 {
    let from_proc = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1)?.parse().ok())
        });
    from_proc.unwrap_or_else(|| id(&["-u"]).expect("`id -u` tells our user id"))
}

/// The `postgres` system user's uid and gid.
fn postgres_ids() -> (u32, u32) {
    let hint = "running as root needs a `postgres` system user to run PostgreSQL as \
                (the Debian postgresql package creates it)";
    let uid = id(&["-u", "postgres"]).unwrap_or_else(|| panic!("{hint}"));
    let gid = id(&["-g", "postgres"]).unwrap_or_else(|| panic!("{hint}"));
    (uid, gid)
}

fn id(args: &[&str]) -> Option<u32> {
    let output = Command::new("id").args(args).output().ok()?;
    if !output.status.success() {
        return None;
    }
    String::from_utf8_lossy(&output.stdout).trim().parse().ok()
}

/// A free loopback port: bound to find it, then released for the server.
fn free_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|listener| listener.local_addr())
        .expect("a free loopback port")
        .port()
}

/// Runs `command` to the end (killing it after `timeout`): its output on success, else a
/// description with the exit status, stdout and stderr.
fn run(mut command: Command, timeout: Duration) -> Result<String, String> {
    // Anonymous files rather than pipes: a server started by pg_ctl can never hold them open
    // and block us, and nothing needs reading while the command runs.
    let mut stdout = tempfile::tempfile().expect("a temp file for stdout");
    let mut stderr = tempfile::tempfile().expect("a temp file for stderr");
    command
        .stdin(Stdio::null())
        .stdout(stdout.try_clone().expect("clone stdout file"))
        .stderr(stderr.try_clone().expect("clone stderr file"));
    let shown = format!("{command:?}");
    let mut child = command
        .spawn()
        .map_err(|e| format!("cannot run {shown}: {e}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("waiting for {shown}: {e}")),
        }
    };
    let read = |file: &mut File| {
        let mut text = String::new();
        let _ = file.rewind();
        let _ = file.read_to_string(&mut text);
        text
    };
    let (out, err) = (read(&mut stdout), read(&mut stderr));
    match status {
        Some(status) if status.success() => Ok(out),
        Some(status) => Err(format!(
            "{shown} exited with {status}\n--- stdout ---\n{out}--- stderr ---\n{err}"
        )),
        None => Err(format!(
            "{shown} still running after {timeout:?}, killed\n--- stdout ---\n{out}--- stderr ---\n{err}"
        )),
    }
}

fn append(path: &Path, text: &str) {
    OpenOptions::new()
        .append(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot append to {}: {e}", path.display()));
}

fn overwrite(path: &Path, text: &str) {
    OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(text.as_bytes()))
        .unwrap_or_else(|e| panic!("cannot rewrite {}: {e}", path.display()));
}
