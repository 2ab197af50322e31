//! TLS helpers the suites share: kazoo over TLS, client certificates from
//! `zkop client-cert`, and a guard for a writer process.

use std::path::{Path, PathBuf};

use super::{LocalCluster, python};

/// kazoo over TLS with the certificate in `dir`: runs `ops` (Python, with
/// `zk` connected), printing what they print.
pub fn kazoo_tls(hosts: &str, dir: &Path, ops: &str) -> String {
    let script = format!(
        r#"
import sys
from kazoo.client import KazooClient
from kazoo.security import ACL, Id, Permissions
from kazoo.exceptions import NoAuthError
hosts, d = sys.argv[1:3]
zk = KazooClient(hosts=hosts, use_ssl=True, verify_certs=True, ca=d + '/ca.pem',
                 certfile=d + '/cert.pem', keyfile=d + '/key.pem', timeout=15)
zk.start(timeout=30)
{ops}
zk.stop()
"#
    );
    python(&script, &[hosts, &dir.display().to_string()])
}

/// A client certificate from `zkop client-cert`.
pub fn client_cert(c: &LocalCluster, name: &str) -> PathBuf {
    let dir = c.dir.path().join(name);
    let out = c.zkop(&["client-cert", name, "--out", &dir.display().to_string()]);
    assert!(
        out.status.success(),
        "zkop client-cert {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = std::fs::read_to_string(dir.join("key.pem")).unwrap();
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    dir
}

/// The writer's process, killed (by its PID) if the test ends before it stops.
pub struct Writer(pub Option<std::process::Child>);

impl Drop for Writer {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends `bytes` in plaintext to `host:port`; what came back before the
/// server closed (or 3 s passed).
pub fn plaintext_reply(host: &str, port: u16, hex: &str) -> String {
    let script = r#"
import socket, sys
host, port, data = sys.argv[1], int(sys.argv[2]), bytes.fromhex(sys.argv[3])
try:
    s = socket.create_connection((host, port), timeout=5)
except ConnectionRefusedError:
    print('connection refused'); sys.exit(0)
s.sendall(data)
s.settimeout(3)
got = b''
try:
    while True:
        chunk = s.recv(4096)
        if not chunk: break
        got += chunk
except socket.timeout:
    print('still open: ' + got.hex()); sys.exit(0)
except ConnectionResetError:
    pass
print('closed: ' + got.hex())
"#;
    python(script, &[host, &port.to_string(), hex])
}

/// A plaintext client gets nothing from `address`, and a plaintext peer is
/// closed without a reply.
pub fn plaintext_gets_nothing(address: &str) {
    // A plaintext client gets nothing: no plaintext port, no answer in
    // plaintext on the secure one.
    let srvr = "73727672";
    assert_eq!(plaintext_reply(address, 2181, srvr), "connection refused");
    let on_secure = plaintext_reply(address, 2281, srvr);
    assert!(
        !on_secure.contains("5a6f6f6b6565706572"),
        "a plaintext srvr on the secure port was answered: {on_secure}"
    );

    // A plaintext peer on the quorum ports is closed without a reply (an
    // election's first message: protocol version -65536, then server id 9).
    let hello = "ffffffffffff00000000000000000009";
    for port in [2888, 3888] {
        let reply = plaintext_reply(address, port, hello);
        assert_eq!(reply, "closed:", "port {port}: {reply}");
    }
}

/// A new client (certificate `reader`) finds every write `/w-N` of `acked`
/// through `connect_string`.
pub fn assert_writes_kept_over_tls(c: &LocalCluster, connect_string: &str, acked: &[u64]) {
    let reader = client_cert(c, "reader");
    let present = kazoo_tls(
        connect_string,
        &reader,
        "print(' '.join(c[2:] for c in zk.get_children('/') if c.startswith('w-')))",
    );
    let present: std::collections::BTreeSet<u64> = present
        .split_whitespace()
        .map(|n| n.parse().unwrap())
        .collect();
    let lost: Vec<_> = acked.iter().filter(|n| !present.contains(n)).collect();
    assert!(lost.is_empty(), "acknowledged writes lost: {lost:?}");
}
