//! A private OpenSSH server for tests: generated host and client keys in a
//! temporary directory, its own config on a loopback port, the freshly
//! built binaries first on the remote PATH. Nothing of the system's ssh
//! configuration is read or changed. Killed on drop.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const SSHD: &str = "/usr/sbin/sshd";

/// A running sshd.
pub struct Sshd {
    child: Child,
    /// Its TCP port on 127.0.0.1.
    pub port: u16,
    /// The client's private key.
    pub client_key: PathBuf,
    dir: tempfile::TempDir,
}

impl Sshd {
    /// Starts sshd with `bin_dir` first on the remote PATH. Returns `None`
    /// (test skipped, with a message) when OpenSSH is not installed, except
    /// under CI (`CI` set), where that is a failure.
    pub fn start(bin_dir: &Path) -> Option<Sshd> {
        let have = Path::new(SSHD).exists()
            && Command::new("ssh-keygen").arg("-?").output().is_ok()
            && Command::new("ssh").arg("-V").output().is_ok();
        if !have {
            assert!(
                std::env::var_os("CI").is_none(),
                "openssh-server/openssh-client missing under CI"
            );
            eprintln!("SKIPPED: openssh-server not installed (apt-get install openssh-server)");
            return None;
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        for k in ["host_key", "client_key"] {
            let st = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-f"])
                .arg(d.join(k))
                .status()
                .expect("ssh-keygen");
            assert!(st.success(), "ssh-keygen failed");
        }
        std::fs::copy(d.join("client_key.pub"), d.join("authorized_keys")).expect("copy key");
        // Privilege separation directory sshd insists on.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = super::free_tcp_port();
        let config = format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
             UsePAM no\nStrictModes no\nPermitRootLogin yes\nPasswordAuthentication no\n\
             KbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
             AuthorizedKeysFile {d}/authorized_keys\nSetEnv PATH={bin}:/usr/bin:/bin\n\
             LogLevel ERROR\n",
            d = d.display(),
            bin = bin_dir.display()
        );
        std::fs::write(d.join("sshd_config"), config).expect("write config");
        let child = Command::new(SSHD)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start sshd");
        let mut s = Sshd {
            child,
            port,
            client_key: d.join("client_key"),
            dir,
        };
        let end = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Ok(Some(st)) = s.child.try_wait() {
                panic!("sshd exited early: {st}");
            }
            assert!(Instant::now() < end, "sshd did not listen on {port}");
            std::thread::sleep(Duration::from_millis(50));
        }
        Some(s)
    }

    /// An `-e/--rsh` command reaching this sshd, hermetic (no user config,
    /// no known_hosts, no prompts).
    pub fn rsh(&self) -> String {
        self.rsh_with_port(self.port)
    }

    /// Like [`Sshd::rsh`] with another port (to test connection failures).
    pub fn rsh_with_port(&self, port: u16) -> String {
        format!(
            "ssh -F /dev/null -p {} -i {} -o IdentitiesOnly=yes -o BatchMode=yes \
             -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
            port,
            self.client_key.display()
        )
    }

    /// The temporary directory holding keys and config.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
