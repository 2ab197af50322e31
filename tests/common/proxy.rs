//! A TCP proxy on loopback that a test can cut: once cut, it forwards
//! nothing more, on open connections or new ones, and holds them open (a
//! black hole, as a lost route is: calls hang until their deadline).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A proxy to one address; dropping it stops it.
pub struct Proxy {
    /// `http://127.0.0.1:PORT`, to use instead of the target's URL.
    pub url: String,
    cut: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Proxy {
    /// Forwards a loopback port to `target` (`host:port`).
    pub async fn start(target: &str) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let cut = Arc::new(AtomicBool::new(false));
        let target = target.to_string();
        let flag = cut.clone();
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                tokio::spawn(forward(client, target.clone(), flag.clone()));
            }
        });
        Proxy { url, cut, task }
    }

    /// Stops forwarding (or starts again).
    pub fn set_cut(&self, cut: bool) {
        self.cut.store(cut, Ordering::SeqCst);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn forward(mut client: TcpStream, target: String, cut: Arc<AtomicBool>) {
    let Ok(mut server) = TcpStream::connect(&target).await else {
        return;
    };
    let (mut cr, mut cw) = client.split();
    let (mut sr, mut sw) = server.split();
    let up = pump(&mut cr, &mut sw, &cut);
    let down = pump(&mut sr, &mut cw, &cut);
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Copies until either side closes; while cut, reads nothing and holds on.
async fn pump(
    from: &mut (impl AsyncReadExt + Unpin),
    to: &mut (impl AsyncWriteExt + Unpin),
    cut: &AtomicBool,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        if cut.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let read = tokio::time::timeout(Duration::from_millis(100), from.read(&mut buf)).await;
        let n = match read {
            Err(_) => continue,
            Ok(Ok(0)) | Ok(Err(_)) => return,
            Ok(Ok(n)) => n,
        };
        if cut.load(Ordering::SeqCst) || to.write_all(&buf[..n]).await.is_err() {
            // Bytes read while the cut came are dropped, as on a lost route.
            if !cut.load(Ordering::SeqCst) {
                return;
            }
        }
    }
}
