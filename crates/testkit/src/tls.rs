//! TLS for the tests: a CA with server and client certificates made here
//! (rcgen, keys by aws-lc-rs), and a private RabbitMQ node and PostgreSQL
//! server with TLS listeners, each on its own ports and in its own folder,
//! started by the test and stopped when dropped (the machine's running
//! services are not touched).
//!
//! RabbitMQ: `rabbitmq-server` in the foreground with its own node name,
//! ports, Mnesia and log folders, config (TLS listener, peer certificates
//! asked for, EXTERNAL by the certificate's common name) and plugins file
//! (`rabbitmq_auth_mechanism_ssl`). PostgreSQL: `initdb` and `pg_ctl` from
//! `/usr/lib/postgresql/<newest>/bin`, as the `postgres` user when run as
//! root (initdb refuses root), `ssl = on`, and only `hostssl ... cert` lines
//! in `pg_hba.conf`: a client must show a certificate whose common name is
//! its user name.

use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

/// The files of one TLS link's client side (`[broker]` or `[store]`):
/// `ca_file`, `client_cert_file`, `client_key_file`.
#[derive(Debug, Clone, Default)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

/// A CA and a server certificate for `localhost` and 127.0.0.1, as PEM
/// files in `dir`.
pub struct Pki {
    pub dir: PathBuf,
    pub ca: PathBuf,
    pub server_cert: PathBuf,
    pub server_key: PathBuf,
    issuer: Issuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA named `name` (its files `<name>-ca.pem`, ...) in `dir`.
    pub fn new(dir: &Path, name: &str) -> Pki {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, format!("allegro-bridge test CA {name}"));
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().unwrap();
        let ca_cert = params.self_signed(&key).unwrap();
        let issuer = Issuer::new(params, key);
        let write = |file: &str, text: &str| {
            let p = dir.join(format!("{name}-{file}"));
            std::fs::write(&p, text).unwrap();
            p
        };
        let ca = write("ca.pem", &ca_cert.pem());
        let (cert, key) = leaf(
            &issuer,
            "localhost",
            vec!["localhost".into(), "127.0.0.1".into(), "::1".into()],
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let server_cert = write("server.pem", &cert);
        let server_key = write("server.key", &key);
        Pki {
            dir: dir.to_path_buf(),
            ca,
            server_cert,
            server_key,
            issuer,
        }
    }

    /// A client certificate with common name `cn` (the login name for
    /// RabbitMQ's EXTERNAL and PostgreSQL's `cert`): (certificate, key).
    pub fn client(&self, cn: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = leaf(
            &self.issuer,
            cn,
            vec![],
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        let c = self.dir.join(format!("client-{cn}.pem"));
        let k = self.dir.join(format!("client-{cn}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

fn leaf(
    issuer: &Issuer<'static, KeyPair>,
    cn: &str,
    names: Vec<String>,
    usage: ExtendedKeyUsagePurpose,
) -> (String, String) {
    let mut params = CertificateParams::new(names).unwrap();
    params.distinguished_name.push(DnType::CommonName, cn);
    params.use_authority_key_identifier_extension = true;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, issuer).unwrap();
    (cert.pem(), key.serialize_pem())
}

/// Waits until something accepts TCP connections on 127.0.0.1:`port`.
fn wait_port(port: u16, limit: Duration, what: &str, log: &dyn Fn() -> String) {
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < limit,
            "{what} did not listen on {port} within {limit:?}:\n{}",
            log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A private RabbitMQ node with a TLS listener (see the module's doc).
pub struct TlsRabbit {
    pub node: String,
    /// The `amqps://` port.
    pub port: u16,
    dir: tempfile::TempDir,
    child: Child,
}

impl TlsRabbit {
    /// Starts the node with `pki`'s server certificate; waits until its TLS
    /// listener accepts connections.
    pub fn start(pki: &Pki) -> TlsRabbit {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let node = format!("{}@localhost", crate::unique("allegro-tls"));
        let (port, plain, dist) = (crate::free_port(), crate::free_port(), crate::free_port());
        let conf = d.join("rabbitmq.conf");
        std::fs::write(
            &conf,
            format!(
                "listeners.tcp.local = 127.0.0.1:{plain}\n\
                 listeners.ssl.default = {port}\n\
                 ssl_options.cacertfile = {ca}\n\
                 ssl_options.certfile = {cert}\n\
                 ssl_options.keyfile = {key}\n\
                 ssl_options.verify = verify_peer\n\
                 ssl_options.fail_if_no_peer_cert = false\n\
                 auth_mechanisms.1 = PLAIN\n\
                 auth_mechanisms.2 = AMQPLAIN\n\
                 auth_mechanisms.3 = EXTERNAL\n\
                 ssl_cert_login_from = common_name\n",
                ca = pki.ca.display(),
                cert = pki.server_cert.display(),
                key = pki.server_key.display(),
            ),
        )
        .unwrap();
        let plugins = d.join("enabled_plugins");
        std::fs::write(&plugins, "[rabbitmq_auth_mechanism_ssl].\n").unwrap();
        let env_conf = d.join("rabbitmq-env.conf");
        std::fs::write(&env_conf, "").unwrap();
        let log = d.join("console.log");
        let child = Command::new(rabbitmq_bin("rabbitmq-server"))
            .current_dir(d)
            .env("HOME", d)
            .env("RABBITMQ_NODENAME", &node)
            .env("RABBITMQ_NODE_PORT", plain.to_string())
            .env("RABBITMQ_DIST_PORT", dist.to_string())
            .env("RABBITMQ_MNESIA_BASE", d.join("mnesia"))
            .env("RABBITMQ_LOG_BASE", d.join("log"))
            .env("RABBITMQ_CONFIG_FILE", &conf)
            .env("RABBITMQ_ADVANCED_CONFIG_FILE", d.join("advanced.config"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", &plugins)
            .env("RABBITMQ_CONF_ENV_FILE", &env_conf)
            .env("RABBITMQ_PID_FILE", d.join("pid"))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&log).unwrap())
            .stderr(std::fs::File::create(d.join("console.err")).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("rabbitmq-server: {e}"));
        let rabbit = TlsRabbit {
            node,
            port,
            dir,
            child,
        };
        wait_port(port, Duration::from_secs(120), "RabbitMQ", &|| rabbit.log());
        rabbit
    }

    /// The node's console output, for a failed assertion.
    pub fn log(&self) -> String {
        let d = self.dir.path();
        format!(
            "{}{}",
            std::fs::read_to_string(d.join("console.log")).unwrap_or_default(),
            std::fs::read_to_string(d.join("console.err")).unwrap_or_default()
        )
    }

    /// `amqps://` URL of the node for user `guest` by password, or by its
    /// client certificate with `external`.
    pub fn url(&self, external: bool) -> String {
        if external {
            format!(
                "amqps://localhost:{}/%2f?auth_mechanism=external",
                self.port
            )
        } else {
            format!("amqps://guest:guest@localhost:{}/%2f", self.port)
        }
    }
}

impl Drop for TlsRabbit {
    fn drop(&mut self) {
        // The script stops the node on SIGTERM; the Erlang VM's own pid is
        // in the pid file, for when it does not.
        let pid = std::fs::read_to_string(self.dir.path().join("pid")).unwrap_or_default();
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(20) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Ok(pid) = pid.trim().parse::<u32>() {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .stderr(Stdio::null())
                .status();
        }
    }
}

fn rabbitmq_bin(name: &str) -> PathBuf {
    // Debian's /usr/sbin wrappers switch to the rabbitmq user and its
    // cookie; the scripts behind them run as whoever starts them.
    let lib = Path::new("/usr/lib/rabbitmq/bin").join(name);
    if lib.exists() {
        lib
    } else {
        name.into()
    }
}

/// A private PostgreSQL server with `ssl = on` (see the module's doc).
pub struct TlsPostgres {
    pub port: u16,
    data: PathBuf,
    bin: PathBuf,
    _dir: tempfile::TempDir,
}

impl TlsPostgres {
    /// initdb, certificates, `pg_ctl start -w`.
    pub fn start(pki: &Pki) -> TlsPostgres {
        let bin = std::fs::read_dir("/usr/lib/postgresql")
            .expect("PostgreSQL's server binaries in /usr/lib/postgresql")
            .filter_map(|e| e.ok())
            .map(|e| e.path().join("bin"))
            .filter(|p| p.join("initdb").exists())
            .max_by_key(|p| {
                p.parent()
                    .and_then(|v| v.file_name())
                    .and_then(|v| v.to_str())
                    .and_then(|v| v.parse::<u32>().ok())
                    .unwrap_or(0)
            })
            .expect("initdb under /usr/lib/postgresql/*/bin");
        let dir = tempfile::tempdir().unwrap();
        // The postgres user must reach the data folder.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let data = dir.path().join("data");
        let owner = as_postgres();
        std::fs::create_dir(&data).unwrap();
        std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o700)).unwrap();
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&data, Some(uid), Some(gid)).unwrap();
        }
        let out = pg_command(&bin.join("initdb"), owner)
            .args(["-D"])
            .arg(&data)
            .args(["-U", "postgres", "-A", "trust", "--no-sync", "-E", "UTF8"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        for (from, to, mode) in [
            (&pki.server_cert, "server.crt", 0o644),
            (&pki.server_key, "server.key", 0o600),
            (&pki.ca, "root.crt", 0o644),
        ] {
            let p = data.join(to);
            std::fs::copy(from, &p).unwrap();
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(&p, Some(uid), Some(gid)).unwrap();
            }
        }
        // Only TLS with a client certificate; the socket folder for pg_ctl.
        std::fs::write(
            data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 cert\n\
             hostssl all all ::1/128 cert\n",
        )
        .unwrap();
        let port = crate::free_port();
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(data.join("postgresql.conf"))
            .unwrap();
        std::io::Write::write_all(
            &mut conf,
            format!(
                "\nport = {port}\nlisten_addresses = 'localhost'\n\
                 unix_socket_directories = '{}'\n\
                 ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\n\
                 ssl_ca_file = 'root.crt'\nfsync = off\nmax_connections = 40\n",
                data.display()
            )
            .as_bytes(),
        )
        .unwrap();
        drop(conf);
        let out = pg_command(&bin.join("pg_ctl"), owner)
            .arg("-D")
            .arg(&data)
            .args(["-w", "-t", "60", "-l"])
            .arg(data.join("log"))
            .arg("start")
            .stdout(Stdio::null())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "pg_ctl start: {}{}",
            String::from_utf8_lossy(&out.stderr),
            std::fs::read_to_string(data.join("log")).unwrap_or_default()
        );
        TlsPostgres {
            port,
            data,
            bin,
            _dir: dir,
        }
    }

    /// URL of database `postgres` as user `postgres`, `sslmode=verify-full`.
    pub fn url(&self) -> String {
        format!(
            "postgres://postgres@localhost:{}/postgres?sslmode=verify-full",
            self.port
        )
    }
}

impl Drop for TlsPostgres {
    fn drop(&mut self) {
        let _ = pg_command(&self.bin.join("pg_ctl"), as_postgres())
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

/// The `postgres` user's (uid, gid) when running as root.
fn as_postgres() -> Option<(u32, u32)> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return None;
    }
    let name = std::ffi::CString::new("postgres").unwrap();
    // SAFETY: a NUL-terminated name; the result is read at once, before any
    // other getpw* call of this thread.
    let pw = unsafe { libc::getpwnam(name.as_ptr()) };
    assert!(
        !pw.is_null(),
        "running as root, but there is no user postgres"
    );
    // SAFETY: checked non-null above.
    let (uid, gid) = unsafe { ((*pw).pw_uid, (*pw).pw_gid) };
    Some((uid, gid))
}

fn pg_command(program: &Path, owner: Option<(u32, u32)>) -> Command {
    match owner {
        Some(_) => {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(program);
            c
        }
        None => Command::new(program),
    }
}
